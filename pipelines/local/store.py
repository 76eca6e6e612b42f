"""The local object store: `s3://bucket/key` <-> `<FORECAST_HOME>/s3/bucket/key`.

Local mode replaces S3 with a directory tree so that step scripts, the runtime and the
local SageMaker stand-in exchange data through the same URIs they would use on AWS.
Every write is atomic (temp file + os.replace) so a crashed or interrupted step never
leaves a half-written object that a later step would read as complete.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Optional, Union

from pipelines.local.errors import LocalClientError
from processing.kernel.settings import Settings

TMP_MARKER = ".tmp-"  # temp files carry this in their name and are never listed


def store_root(settings: Settings) -> Path:
    return settings.home_path / "s3"


def split_uri(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('bucket', 'a/b'); raises ValueError naming the URI otherwise."""
    text = str(uri)
    if not text.startswith("s3://"):
        raise ValueError(f"{text!r} is not an S3 URI (expected s3://bucket/key)")
    bucket, _, key = text[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{text!r} has no bucket name (expected s3://bucket/key)")
    return bucket, key


def local_path(uri: str, settings: Settings) -> Path:
    """Where the object (or prefix) `uri` lives in the local store."""
    bucket, key = split_uri(uri)
    root = store_root(settings)
    path = (root / bucket / key) if key else root / bucket
    resolved = path.resolve()
    if root.resolve() not in resolved.parents and resolved != root.resolve():
        raise ValueError(f"{uri!r} escapes the local object store {root}")
    return path


def to_uri(path: Union[str, Path], settings: Settings) -> str:
    """The s3:// URI of a path inside the local store (inverse of local_path)."""
    root = store_root(settings).resolve()
    resolved = Path(path).resolve()
    try:
        relative = resolved.relative_to(root)
    except ValueError:
        raise ValueError(f"{path} is not inside the local object store {root}") from None
    parts = relative.parts
    if not parts:
        raise ValueError(f"{path} is the store root, not a bucket or object")
    return "s3://" + "/".join(parts)


def is_local_source(uri: str) -> bool:
    """Local runs also accept plain paths and file:// URIs as inputs (handy for user data)."""
    return not str(uri).startswith("s3://")


def _source_path(uri: str) -> Path:
    text = str(uri)
    return Path(text[len("file://") :] if text.startswith("file://") else text).expanduser()


# --- atomic writes ------------------------------------------------------------------------
def _temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARKER}{uuid.uuid4().hex[:8]}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_sibling(path)
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()


def atomic_copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_sibling(target)
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()


def _is_hidden_temp(path: Path) -> bool:
    return TMP_MARKER in path.name and path.name.startswith(".")


def _files_under(path: Path) -> Iterator[Path]:
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in sorted(filenames):
            candidate = Path(dirpath) / name
            if not _is_hidden_temp(candidate):
                yield candidate


def list_prefix(uri: str, settings: Settings) -> list[tuple[str, Path]]:
    """(relative name, local file) of every object under an S3 prefix, as S3Prefix inputs see it.

    A URI naming an object gives that object under its base name; a folder gives its files
    relative to it; a partial prefix ('s3://b/data/tr') gives the matching siblings relative
    to the parent folder.
    """
    if is_local_source(uri):
        path = _source_path(uri)
    else:
        path = local_path(uri, settings)
    if path.is_file():
        return [(path.name, path)]
    if path.is_dir():
        return [(str(f.relative_to(path)), f) for f in _files_under(path)]
    parent, stem = path.parent, path.name
    found: list[tuple[str, Path]] = []
    if parent.is_dir():
        for child in sorted(parent.iterdir()):
            if not child.name.startswith(stem) or _is_hidden_temp(child):
                continue
            if child.is_file():
                found.append((child.name, child))
            else:
                found.extend((str(f.relative_to(parent)), f) for f in _files_under(child))
    return found


def copy_in(uri: str, destination: Union[str, Path], settings: Settings) -> list[Path]:
    """Download every object under `uri` into `destination` (a folder), like a processing input."""
    files = list_prefix(uri, settings)
    if not files:
        where = _source_path(uri) if is_local_source(uri) else local_path(uri, settings)
        raise FileNotFoundError(
            f"no data at {uri} (looked in {where}); check the URI or pass an existing file or folder"
        )
    destination = Path(destination)
    written = []
    for relative, source in files:
        target = destination / relative
        atomic_copy_file(source, target)
        written.append(target)
    return written


def _destination(uri: str, settings: Settings) -> Path:
    """Where an output URI lands: the store for s3://, the folder itself for paths and file://."""
    return _source_path(uri) if is_local_source(uri) else local_path(uri, settings)


def copy_out(source: Union[str, Path], uri: str, settings: Settings) -> list[str]:
    """Upload a folder's files (or one file) to the prefix `uri`; returns the object URIs.

    On the local target an output may also go to a plain path or file:// URL (the batch
    report's OutputUrl), written there file by file, atomically.
    """
    source = Path(source)
    prefix = uri.rstrip("/")
    if source.is_file():
        atomic_copy_file(source, _destination(prefix + "/" + source.name, settings))
        return [prefix + "/" + source.name]
    uris = []
    if source.is_dir():
        for file in _files_under(source):
            relative = file.relative_to(source).as_posix()
            target_uri = prefix + "/" + relative
            atomic_copy_file(file, _destination(target_uri, settings))
            uris.append(target_uri)
    return uris


# --- the boto3-shaped client ---------------------------------------------------------------
class _Body:
    """The part of botocore's StreamingBody that callers use."""

    def __init__(self, data: bytes):
        self._stream = io.BytesIO(data)

    def read(self, amt: Optional[int] = None) -> bytes:
        return self._stream.read() if amt is None else self._stream.read(amt)

    def iter_lines(self) -> Iterator[bytes]:
        for line in self._stream:
            yield line.rstrip(b"\r\n")

    def close(self) -> None:
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _etag_of(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


def _modified(path: Path) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(path.stat().st_mtime, tz=datetime.timezone.utc)


class _Paginator:
    def __init__(self, method):
        self._method = method

    def paginate(self, **kwargs) -> Iterator[dict]:
        token = None
        while True:
            page = self._method(**kwargs, **({"ContinuationToken": token} if token else {}))
            yield page
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]


class LocalS3Client:
    """S3 operations used by the project, over the local store. Errors are ClientErrors."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = store_root(settings)

    # helpers
    def _path(self, bucket: str, key: str = "") -> Path:
        if not bucket or "/" in bucket:
            raise LocalClientError("InvalidBucketName", f"invalid bucket name {bucket!r}", "S3")
        return local_path(f"s3://{bucket}/{key}", self.settings)

    def _object(self, bucket: str, key: str, operation: str, code: str = "NoSuchKey") -> Path:
        path = self._path(bucket, key)
        if not key or not path.is_file():
            raise LocalClientError(code, f"The specified key does not exist: s3://{bucket}/{key}", operation)
        return path

    # buckets
    def create_bucket(self, Bucket: str, **_: Any) -> dict:
        self._path(Bucket).mkdir(parents=True, exist_ok=True)
        return {"Location": f"/{Bucket}"}

    def head_bucket(self, Bucket: str, **_: Any) -> dict:
        if not self._path(Bucket).is_dir():
            raise LocalClientError("404", "Not Found", "HeadBucket")
        return {}

    def list_buckets(self, **_: Any) -> dict:
        buckets = sorted(p for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []
        return {"Buckets": [{"Name": p.name, "CreationDate": _modified(p)} for p in buckets]}

    # objects
    def put_object(self, Bucket: str, Key: str, Body: Union[bytes, str, BinaryIO, None] = b"", **_: Any) -> dict:
        if Body is None:
            data = b""
        elif isinstance(Body, str):
            data = Body.encode("utf-8")
        elif isinstance(Body, (bytes, bytearray)):
            data = bytes(Body)
        else:
            data = Body.read()
            data = data.encode("utf-8") if isinstance(data, str) else data
        atomic_write_bytes(self._path(Bucket, Key), data)
        return {"ETag": _etag_of(data)}

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict:
        path = self._object(Bucket, Key, "GetObject")
        data = path.read_bytes()
        return {
            "Body": _Body(data),
            "ContentLength": len(data),
            "ETag": _etag_of(data),
            "LastModified": _modified(path),
        }

    def head_object(self, Bucket: str, Key: str, **_: Any) -> dict:
        path = self._object(Bucket, Key, "HeadObject", code="404")
        return {
            "ContentLength": path.stat().st_size,
            "LastModified": _modified(path),
            "ETag": '"%x-%x"' % (path.stat().st_size, path.stat().st_mtime_ns),
        }

    def list_objects_v2(
        self,
        Bucket: str,
        Prefix: str = "",
        Delimiter: str = "",
        MaxKeys: int = 1000,
        ContinuationToken: str = "",
        StartAfter: str = "",
        **_: Any,
    ) -> dict:
        bucket_dir = self._path(Bucket)
        if not bucket_dir.is_dir():
            raise LocalClientError("NoSuchBucket", f"The specified bucket does not exist: {Bucket}", "ListObjectsV2")
        keys = sorted(f.relative_to(bucket_dir).as_posix() for f in _files_under(bucket_dir))
        keys = [k for k in keys if k.startswith(Prefix) and k > (ContinuationToken or StartAfter or "")]
        contents, prefixes = [], []
        for key in keys:
            if Delimiter:
                rest = key[len(Prefix) :]
                if Delimiter in rest:
                    common = Prefix + rest.split(Delimiter, 1)[0] + Delimiter
                    if common not in prefixes:
                        prefixes.append(common)
                    continue
            contents.append(key)
        truncated = len(contents) > MaxKeys
        contents = contents[:MaxKeys]
        response: dict = {
            "Name": Bucket,
            "Prefix": Prefix,
            "MaxKeys": MaxKeys,
            "IsTruncated": truncated,
            "KeyCount": len(contents) + len(prefixes),
        }
        if contents:
            response["Contents"] = []
            for key in contents:
                path = bucket_dir / key
                stat = path.stat()
                response["Contents"].append(
                    {
                        "Key": key,
                        "Size": stat.st_size,
                        "LastModified": _modified(path),
                        "ETag": '"%x-%x"' % (stat.st_size, stat.st_mtime_ns),
                        "StorageClass": "STANDARD",
                    }
                )
        if prefixes:
            response["CommonPrefixes"] = [{"Prefix": p} for p in prefixes]
        if truncated:
            response["NextContinuationToken"] = contents[-1]
        return response

    def get_paginator(self, operation: str) -> _Paginator:
        if operation != "list_objects_v2":
            raise NotImplementedError(f"the local S3 client paginates list_objects_v2 only, not {operation}")
        return _Paginator(self.list_objects_v2)

    def copy_object(self, Bucket: str, Key: str, CopySource: Union[str, dict], **_: Any) -> dict:
        if isinstance(CopySource, dict):
            src_bucket, src_key = CopySource["Bucket"], CopySource["Key"]
        else:
            src_bucket, _, src_key = CopySource.lstrip("/").partition("/")
        source = self._object(src_bucket, src_key, "CopyObject")
        atomic_copy_file(source, self._path(Bucket, Key))
        return {"CopyObjectResult": {"ETag": _etag_of(source.read_bytes())}}

    def upload_file(self, Filename: str, Bucket: str, Key: str, ExtraArgs: Optional[dict] = None, **_: Any) -> None:
        source = Path(Filename)
        if not source.is_file():
            raise FileNotFoundError(f"upload_file: {Filename} does not exist")
        atomic_copy_file(source, self._path(Bucket, Key))

    def upload_fileobj(self, Fileobj: BinaryIO, Bucket: str, Key: str, **_: Any) -> None:
        self.put_object(Bucket=Bucket, Key=Key, Body=Fileobj)

    def download_file(self, Bucket: str, Key: str, Filename: str, **_: Any) -> None:
        source = self._object(Bucket, Key, "HeadObject", code="404")
        atomic_copy_file(source, Path(Filename))

    def download_fileobj(self, Bucket: str, Key: str, Fileobj: BinaryIO, **_: Any) -> None:
        Fileobj.write(self._object(Bucket, Key, "GetObject").read_bytes())

    def delete_object(self, Bucket: str, Key: str, **_: Any) -> dict:
        path = self._path(Bucket, Key)
        if key_exists := path.is_file():
            path.unlink()
        return {"DeleteMarker": False} if key_exists else {}

    def delete_objects(self, Bucket: str, Delete: dict, **_: Any) -> dict:
        deleted = []
        for item in Delete.get("Objects", []):
            self.delete_object(Bucket=Bucket, Key=item["Key"])
            deleted.append({"Key": item["Key"]})
        return {"Deleted": deleted}

    def delete_bucket(self, Bucket: str, **_: Any) -> dict:
        path = self._path(Bucket)
        if path.is_dir() and any(_files_under(path)):
            raise LocalClientError("BucketNotEmpty", f"The bucket {Bucket} is not empty", "DeleteBucket")
        if path.is_dir():
            shutil.rmtree(path)
        return {}


def object_uris(uri: str, settings: Settings) -> Iterable[str]:
    """Every object URI under a prefix (for messages and summaries)."""
    bucket, key = split_uri(uri)
    base = local_path(f"s3://{bucket}", settings)
    for _relative, path in list_prefix(uri, settings):
        yield f"s3://{bucket}/" + path.relative_to(base).as_posix()


__all__ = [
    "LocalS3Client",
    "local_path",
    "to_uri",
    "copy_in",
    "copy_out",
    "list_prefix",
    "split_uri",
    "atomic_write_bytes",
    "atomic_copy_file",
    "store_root",
    "object_uris",
]
