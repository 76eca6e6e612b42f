"""The step code bundle: the files processing steps run, uploaded to a content-addressed S3 key.

Steps mount `s3://<bucket>/<prefix>/code/<sha>/` at contracts.CODE_DIR and put it on
PYTHONPATH. The key is a hash of the files, so:
- rendering a definition only computes the URI (no upload, no network, deterministic);
- an upsert that changes no code uploads nothing, and a changed file gives a new key, so a
  running execution never sees code swapped under it.

Contents (the container boundary: stdlib + the processing image's packages, pinned in
pipelines/processing_image.toml, + these):
processing/**.py (with the kernel, processing/kernel/), processing/requirements/*.txt and
evaluation/**.py. Nothing from pipelines/: steps call AWS through plain boto3, and the layer
contracts in pyproject.toml keep processing and evaluation from importing anything above them.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from processing.atomic import replace_directory, usual_permissions
from processing.kernel import aws_errors
from processing.kernel.settings import Settings, ensure_home

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("processing", "evaluation")
HASH_LENGTH = 16


def bundle_files(root: Path = PROJECT_ROOT) -> list[tuple[str, Path]]:
    """(relative posix path, absolute path) of every bundled file, sorted by path."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        base = root / package
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            relative = path.relative_to(root)
            if path.suffix == ".py" or relative.parts[:2] == ("processing", "requirements"):
                found[relative.as_posix()] = path
    return sorted(found.items())


def bundle_hash(root: Path = PROJECT_ROOT) -> str:
    """Hash of the bundled paths and contents: same files, same key."""
    digest = hashlib.sha256()
    for relative, path in bundle_files(root):
        digest.update(relative.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:HASH_LENGTH]


def bundle_prefix(settings: Settings, root: Path = PROJECT_ROOT) -> str:
    """The object key prefix (no bucket), ending in '/'."""
    return "/".join(p for p in (settings.prefix.strip("/"), "code", bundle_hash(root)) if p) + "/"


def bundle_uri(settings: Settings, root: Path = PROJECT_ROOT) -> str:
    """s3://<bucket>/<prefix>/code/<sha>/ : what the definition mounts (computing it needs no network)."""
    return f"s3://{settings.effective_bucket}/{bundle_prefix(settings, root)}"


def upload(settings: Settings, root: Path = PROJECT_ROOT, log: Callable[[str], None] = print) -> str:
    """Put the bundle where steps read it; returns its URI.

    SageMaker target: upload to S3 unless the bundle's marker object is already there.
    Local target: copy into the local object store (<home>/s3/<bucket>/<key>), atomically.
    """
    prefix = bundle_prefix(settings, root)
    uri = f"s3://{settings.effective_bucket}/{prefix}"
    files = bundle_files(root)
    if settings.is_local:
        _copy_local(settings, prefix, uri, files, log)
    else:
        _upload_s3(settings, prefix, uri, files, log)
    return uri


MARKER = ".complete"  # written last: its presence means every file of the bundle is there


def _copy_local(settings: Settings, prefix: str, uri: str, files: list[tuple[str, Path]], log) -> None:
    ensure_home(settings.home_path)
    target = settings.home_path / "s3" / settings.effective_bucket / prefix
    if (target / MARKER).is_file():
        log(f"code bundle {uri} already in the local store")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=target.parent))
    usual_permissions(staging, directory=True)
    try:
        for relative, path in files:
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
        (staging / MARKER).write_text("\n".join(relative for relative, _ in files) + "\n")
        replace_directory(staging, target)  # over an incomplete earlier copy, if any
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log(f"code bundle: {len(files)} files copied to {target}")


def _upload_s3(settings: Settings, prefix: str, uri: str, files: list[tuple[str, Path]], log) -> None:
    from botocore.exceptions import ClientError

    from deploy.clients import client

    s3 = client("s3", settings)
    bucket = settings.effective_bucket
    try:
        s3.head_object(Bucket=bucket, Key=prefix + MARKER)
        log(f"code bundle {uri} already uploaded")
        return
    except ClientError as error:  # 404: not there yet
        if not aws_errors.is_not_found(error):
            raise
    for relative, path in files:
        s3.upload_file(str(path), bucket, prefix + relative)
    s3.put_object(
        Bucket=bucket, Key=prefix + MARKER, Body=("\n".join(relative for relative, _ in files) + "\n").encode()
    )
    log(f"code bundle: {len(files)} files uploaded to {uri}")
