"""The local object store: URI mapping, prefix copies, and the boto3-shaped S3 client."""

from __future__ import annotations

import io

import pytest
from botocore.exceptions import ClientError

from pipelines.local.store import LocalS3Client, copy_in, copy_out, list_prefix, local_path, to_uri
from processing.kernel.settings import resolve


@pytest.fixture
def settings():
    return resolve()


def test_uri_and_path_round_trip(settings):
    path = local_path("s3://bucket/a/b.csv", settings)
    assert path == settings.home_path / "s3" / "bucket" / "a" / "b.csv"
    assert to_uri(path, settings) == "s3://bucket/a/b.csv"


def test_bad_uris_are_rejected_with_the_uri_named(settings, tmp_path):
    with pytest.raises(ValueError, match="'/tmp/x' is not an S3 URI"):
        local_path("/tmp/x", settings)
    with pytest.raises(ValueError, match="escapes the local object store"):
        local_path("s3://bucket/../../etc/passwd", settings)
    with pytest.raises(ValueError, match="is not inside the local object store"):
        to_uri(tmp_path, settings)


def test_client_put_get_head_list_delete(settings):
    s3 = LocalS3Client(settings)
    s3.create_bucket(Bucket="b")
    assert s3.head_bucket(Bucket="b") == {}
    s3.put_object(Bucket="b", Key="data/x/1.csv", Body=b"a,b\n1,2\n")
    s3.put_object(Bucket="b", Key="data/x/2.csv", Body="text body")
    s3.put_object(Bucket="b", Key="data/y.json", Body=io.BytesIO(b"{}"))
    assert s3.get_object(Bucket="b", Key="data/x/1.csv")["Body"].read() == b"a,b\n1,2\n"
    assert s3.head_object(Bucket="b", Key="data/x/2.csv")["ContentLength"] == len("text body")

    listed = s3.list_objects_v2(Bucket="b", Prefix="data/x/")
    assert [(c["Key"], c["Size"]) for c in listed["Contents"]] == [("data/x/1.csv", 8), ("data/x/2.csv", 9)]
    folders = s3.list_objects_v2(Bucket="b", Prefix="data/", Delimiter="/")
    assert [c["Key"] for c in folders["Contents"]] == ["data/y.json"]
    assert folders["CommonPrefixes"] == [{"Prefix": "data/x/"}]
    assert "Contents" not in s3.list_objects_v2(Bucket="b", Prefix="nothing/")

    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket="b", MaxKeys=2))
    assert [len(p["Contents"]) for p in pages] == [2, 1]

    s3.delete_objects(Bucket="b", Delete={"Objects": [{"Key": "data/x/1.csv"}, {"Key": "data/y.json"}]})
    s3.delete_object(Bucket="b", Key="data/x/2.csv")
    assert "Contents" not in s3.list_objects_v2(Bucket="b")


def test_missing_objects_raise_client_errors_like_boto3(settings):
    s3 = LocalS3Client(settings)
    with pytest.raises(ClientError, match="NoSuchKey"):
        s3.get_object(Bucket="b", Key="missing.csv")
    with pytest.raises(ClientError, match=r"\(404\)"):
        s3.head_object(Bucket="b", Key="missing.csv")
    with pytest.raises(ClientError, match=r"\(404\)"):
        s3.head_bucket(Bucket="never-created")


def test_upload_and_download_files(settings, tmp_path):
    s3 = LocalS3Client(settings)
    source = tmp_path / "in.txt"
    source.write_text("hello")
    s3.upload_file(str(source), "b", "k/in.txt")
    s3.download_file("b", "k/in.txt", str(tmp_path / "out" / "copy.txt"))
    assert (tmp_path / "out" / "copy.txt").read_text() == "hello"
    assert not [p for p in local_path("s3://b/k", settings).iterdir() if p.name.startswith(".")]


def test_copy_out_then_copy_in_keeps_the_folder_layout(settings, tmp_path):
    produced = tmp_path / "produced"
    (produced / "plots").mkdir(parents=True)
    (produced / "evaluation.json").write_text("{}")
    (produced / "plots" / "a.png").write_bytes(b"\x89PNG")
    uris = copy_out(produced, "s3://b/run/1/evaluation/", settings)
    assert sorted(uris) == ["s3://b/run/1/evaluation/evaluation.json", "s3://b/run/1/evaluation/plots/a.png"]

    copied = copy_in("s3://b/run/1/evaluation", tmp_path / "mounted", settings)
    assert sorted(p.relative_to(tmp_path / "mounted").as_posix() for p in copied) == ["evaluation.json", "plots/a.png"]
    # an object URI mounts that one file under its own name
    single = copy_in("s3://b/run/1/evaluation/evaluation.json", tmp_path / "one", settings)
    assert single == [tmp_path / "one" / "evaluation.json"]


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_given_a_local_destination_when_copying_out_then_files_land_in_that_folder(settings, tmp_path, scheme):
    produced = tmp_path / "produced"
    (produced / "charts").mkdir(parents=True)
    (produced / "summary.json").write_text("{}")
    (produced / "charts" / "a.png").write_bytes(b"\x89PNG")
    target = tmp_path / "report"
    copy_out(produced, f"{scheme}{target}", settings)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        "charts/a.png",
        "summary.json",
    ]
    assert not (settings.home_path / "s3").exists()  # nothing went into the object store


def test_copy_in_of_nothing_names_the_uri(settings, tmp_path):
    with pytest.raises(FileNotFoundError, match="no data at s3://b/absent/"):
        copy_in("s3://b/absent/", tmp_path / "x", settings)


def test_partial_prefix_matches_siblings_like_s3(settings):
    s3 = LocalS3Client(settings)
    for key in ("d/train-1.csv", "d/train-2.csv", "d/test.csv"):
        s3.put_object(Bucket="b", Key=key, Body=b"1")
    assert [name for name, _ in list_prefix("s3://b/d/train", settings)] == ["train-1.csv", "train-2.csv"]
