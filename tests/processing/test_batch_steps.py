"""Batch pipeline steps: ResolveModel and CreateModel against a moto server, PrepareBatchInput on files."""

from __future__ import annotations

import gzip
import json
import re

import boto3
import pandas as pd
import pytest

from processing import batch_input, create_model, resolve_model
from processing.kernel import contracts
from processing.kernel.aws_validation import request_problems

GROUP = "demand-forecasting"
CONTAINERS = [
    {
        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/a:1",
        "ModelDataUrl": "s3://b/m1.tar.gz",
        "Environment": {"A": "1"},
    },
    {
        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/b:1",
        "ModelDataUrl": "s3://b/m2.tar.gz",
        "Environment": {"B": "2"},
    },
]


def register(sm, status, metadata=None):
    extra = {"CustomerMetadataProperties": metadata} if metadata else {}  # the API refuses an empty map
    return sm.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": CONTAINERS,
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        **extra,
    )["ModelPackageArn"]


@pytest.fixture
def sagemaker(moto_endpoint):
    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    return sm


def test_given_no_approved_version_when_resolving_then_it_fails_saying_how_to_approve(sagemaker, tmp_path, capsys):
    register(sagemaker, "PendingManualApproval")
    code = resolve_model.main(["--model-package-group", GROUP, "--result-dir", str(tmp_path)], sagemaker=sagemaker)
    assert code == 2
    assert "has no Approved model package" in capsys.readouterr().err
    assert not (tmp_path / "resolved_model.json").exists()


def test_given_two_approved_versions_when_resolving_then_the_newest_is_chosen_with_its_metadata(sagemaker, tmp_path):
    register(sagemaker, "Approved", {"metric_wape": "0.2"})
    newest = register(
        sagemaker, "Approved", {"metric_wape": "0.1", "forecast_quantiles": "p10 p50 p90", "forecast_horizon": "14"}
    )
    register(sagemaker, "Rejected")
    assert resolve_model.main(["--model-package-group", GROUP, "--result-dir", str(tmp_path)], sagemaker=sagemaker) == 0
    resolved = json.loads((tmp_path / "resolved_model.json").read_text())
    assert resolved["model_package_arn"] == newest
    assert resolved["metrics"] == {"wape": 0.1}
    assert resolved["forecast_quantiles"] == "p10,p50,p90" and resolved["containers"] == 2


def test_given_a_resolved_package_when_creating_the_model_then_it_names_the_package_and_is_retry_safe(
    sagemaker, tmp_path
):
    arn = register(sagemaker, "Approved")
    (tmp_path / "resolved_model.json").write_text(json.dumps({"model_package_arn": arn}))
    argv = [
        "--resolved-dir",
        str(tmp_path),
        "--execution-id",
        "abc123",
        "--role-arn",
        "arn:aws:iam::123456789012:role/forecast",
        "--result-dir",
        str(tmp_path / "out"),
    ]
    assert create_model.main(argv, sagemaker=sagemaker) == 0
    assert create_model.main(argv, sagemaker=sagemaker) == 0  # a retried step reuses the model
    result = json.loads((tmp_path / "out" / "batch_model.json").read_text())
    assert result["model_name"] == "fc-batch-abc123"
    models = sagemaker.list_models()["Models"]
    assert [m["ModelName"] for m in models] == ["fc-batch-abc123"]


def test_create_model_request_validates_against_the_service_model():
    request = create_model.create_model_request(
        create_model.model_name_for("exec/with odd_chars" * 5),
        "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/3",
        "arn:aws:iam::123456789012:role/forecast",
        {"project": "demand-forecasting"},
    )
    assert request_problems("sagemaker", "CreateModel", request) == []
    assert len(request["ModelName"]) <= 63


def test_given_the_clients_service_model_then_the_request_is_checked_against_it_without_loading_another(
    monkeypatch,
):
    """CreateModel checks its request against its client's model: loading SageMaker's again cost ~0.1 s."""
    from processing.kernel import aws_validation

    model = boto3.client("sagemaker", region_name="us-east-1").meta.service_model

    def no_second_load(service):
        raise AssertionError(f"the {service} service model was loaded again")

    monkeypatch.setattr(aws_validation, "_service_model", no_second_load)
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/3"
    request = create_model.create_model_request("fc-batch-x", arn, "arn:aws:iam::123456789012:role/r", None, model)
    assert request["Containers"] == [{"ModelPackageName": arn}]
    with pytest.raises(aws_validation.RequestValidationError, match="ExecutionRoleArn"):
        create_model.create_model_request("fc-batch-x", arn, "not-a-role", None, model)


def make_input(items=5, history=10, future=3):
    rows = []
    for i in range(items):
        for step, day in enumerate(pd.date_range("2024-01-01", periods=history + future)):
            rows.append(
                {
                    "item_id": f"i{i}",
                    "timestamp": day.strftime("%Y-%m-%d"),
                    "target_value": float(step) if step < history else None,
                    "promotion": 0,
                }
            )
    return pd.DataFrame(rows)


def test_given_many_items_when_sharding_then_each_file_holds_whole_series(tmp_path):
    source = tmp_path / "input.csv"
    make_input().sample(frac=1.0, random_state=0).to_csv(source, index=False)  # shuffled rows
    out = tmp_path / "shards"
    assert batch_input.main(["--input", str(source), "--output-dir", str(out), "--items-per-file", "2"]) == 0
    files = sorted(out.glob("part-*.csv"))
    assert [f.name for f in files] == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    seen = set()
    for file in files:
        frame = pd.read_csv(file)
        assert frame.groupby("item_id").size().eq(13).all()  # whole series: 10 history + 3 future
        assert (
            frame["timestamp"].is_monotonic_increasing
            or frame.groupby("item_id")["timestamp"].apply(lambda s: s.is_monotonic_increasing).all()
        )
        assert not seen & set(frame["item_id"])
        seen |= set(frame["item_id"])
    assert len(seen) == 5


def test_given_items_with_too_little_history_then_they_are_dropped_and_named(tmp_path, capsys):
    frame = pd.concat([make_input(items=2), make_input(items=1, history=3).assign(item_id="short")])
    source = tmp_path / "input.csv"
    frame.to_csv(source, index=False)
    assert batch_input.main(["--input", str(source), "--output-dir", str(tmp_path / "out")]) == 0
    assert "Dropped 1 item(s) with fewer than 4 observed values: ['short']" in capsys.readouterr().out


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda f: f.rename(columns={"timestamp": "timestmp"}),
            r"column 'timestamp' \(TimestampColumn\) \(did you mean 'timestmp'\?\) missing; the file has .*"
            r"Fix: pass --param TimestampColumn=timestmp$",
        ),
        (
            lambda f: f.rename(columns={"timestamp": "timestmp", "item_id": "sku"}),  # all at once
            r"columns 'item_id' \(ItemIdColumn\), 'timestamp' \(TimestampColumn\) \(did you mean 'timestmp'\?\) "
            r"missing; .* Fix: pass --param ItemIdColumn=<column> --param TimestampColumn=timestmp$",
        ),
        (
            lambda f: f.assign(timestamp=["not a date"] + list(f["timestamp"][1:])),
            r"column 'timestamp' \(TimestampColumn\): 1 values are not dates: input.csv line 2 \('not a date'\)",
        ),
    ],
)
def test_given_bad_input_then_the_error_names_the_column_and_nothing_is_written(tmp_path, capsys, mutate, message):
    source = tmp_path / "input.csv"
    mutate(make_input()).to_csv(source, index=False)
    out = tmp_path / "out"
    assert batch_input.main(["--input", str(source), "--output-dir", str(out)]) == 2
    assert re.search(message, capsys.readouterr().err.rstrip("\n"))
    assert not out.exists()


def test_given_a_byte_budget_when_sharding_then_files_fit_it_and_hold_whole_series(tmp_path):
    source = tmp_path / "input.csv"
    make_input(items=12).to_csv(source, index=False)
    out = tmp_path / "shards"
    whole = tmp_path / "whole"
    assert batch_input.main(["--input", str(source), "--output-dir", str(whole), "--items-per-file", "100"]) == 0
    header, *rows = (whole / "part-00000.csv").read_bytes().splitlines(keepends=True)
    sizes = pd.Series([len(r) for r in rows]).groupby([r.split(b",")[0] for r in rows]).sum()
    budget = len(header) + 2 * int(sizes.max())  # two items fit, three do not
    assert len(header) + 3 * int(sizes.min()) > budget
    assert (
        batch_input.main(
            [
                "--input",
                str(source),
                "--output-dir",
                str(out),
                "--items-per-file",
                "100",
                "--max-file-bytes",
                str(budget),
            ]
        )
        == 0
    )
    files = sorted(out.glob("part-*.csv"))
    assert len(files) == 6
    assert all(f.stat().st_size <= budget for f in files)
    frames = [pd.read_csv(f) for f in files]
    assert all(f.groupby("item_id").size().eq(13).all() for f in frames)
    assert sorted(i for f in frames for i in f["item_id"].unique()) == sorted(f"i{i}" for i in range(12))


def write_resolved(folder, columns):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "resolved_model.json").write_text(json.dumps({"model_package_arn": "arn", "training_columns": columns}))


def test_given_the_model_training_schema_then_shards_hold_exactly_those_columns_in_order(tmp_path, capsys):
    # the batch input has another column order and a text column training dropped
    frame = make_input().assign(note="weekly deal")[["promotion", "note", "timestamp", "target_value", "item_id"]]
    source = tmp_path / "input.csv"
    frame.to_csv(source, index=False)
    write_resolved(tmp_path / "model", ["item_id", "timestamp", "target_value", "promotion"])
    out = tmp_path / "shards"
    assert (
        batch_input.main(["--input", str(source), "--output-dir", str(out), "--model-dir", str(tmp_path / "model")])
        == 0
    )
    for file in out.glob("part-*.csv"):
        assert file.read_text().splitlines()[0] == "item_id,timestamp,target_value,promotion"
    assert "Left out column(s) the model was not trained on: ['note']" in capsys.readouterr().out


def test_given_a_training_column_missing_from_the_batch_input_then_it_is_named(tmp_path, capsys):
    source = tmp_path / "input.csv"
    make_input().drop(columns="promotion").to_csv(source, index=False)
    write_resolved(tmp_path / "model", ["item_id", "timestamp", "target_value", "promotion"])
    out = tmp_path / "out"
    assert (
        batch_input.main(["--input", str(source), "--output-dir", str(out), "--model-dir", str(tmp_path / "model")])
        == 2
    )
    assert "column(s) 'promotion' of the model's training data are missing" in capsys.readouterr().err
    assert not out.exists()


def test_resolve_model_reads_the_training_schema_from_the_package_metadata():
    metadata = {
        "pipeline_execution_id": "x",
        **contracts.encode_training_columns(["item_id", "timestamp", "target_value", "unit price"]),
    }
    package = {
        "ModelPackageArn": "arn:aws:sagemaker:us-east-1:1:model-package/g/1",
        "CustomerMetadataProperties": metadata,
    }
    resolved = resolve_model.describe_resolved(package)
    assert resolved["training_columns"] == ["item_id", "timestamp", "target_value", "unit price"]


def test_given_a_truncated_gzip_input_then_one_line_names_the_file_and_the_exit_code_is_2(tmp_path, capsys):
    body = gzip.compress(make_input(items=50).to_csv(index=False).encode())
    (tmp_path / "input.csv.gz").write_bytes(body[: len(body) // 2])
    assert batch_input.main(["--input", str(tmp_path / "input.csv.gz"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("PrepareBatchInput failed: input.csv.gz: cannot be read as CSV") and err.count("\n") == 1


def test_given_ids_with_leading_zeros_then_the_shards_keep_them(tmp_path):
    frame = pd.concat([make_input(items=1).assign(item_id=item) for item in ("007", "7")])
    frame.to_csv(tmp_path / "input.csv", index=False)
    assert batch_input.main(["--input", str(tmp_path / "input.csv"), "--output-dir", str(tmp_path / "out")]) == 0
    shards = pd.concat(pd.read_csv(p, dtype=str) for p in sorted((tmp_path / "out").glob("*.csv")))
    assert sorted(shards["item_id"].unique()) == ["007", "7"]


def test_batch_lines_are_the_text_pandas_writes_on_the_fast_path_and_with_awkward_values():
    import numpy as np
    import pandas as pd

    from processing.batch_input import _csv_lines

    frame = pd.DataFrame(
        {
            "item_id": ["007", "a,b", 'q"x'],
            "timestamp": ["2024-01-01"] * 3,
            "target_value": [1.5, np.nan, 1e-07],
            "promotion": [0, 1, 0],
        }
    )
    for case in (frame, frame.assign(item_id=["007", None, "z"]), frame.assign(item_id=["a\nb", "c", "d"])):
        header, lines = _csv_lines(case)
        text = case.to_csv(index=False, lineterminator="\n")
        if "\nb" not in text:
            assert [header] + lines == text.split("\n")[:-1]
        else:  # a quoted line break: one line per row all the same
            assert len(lines) == 3 and lines[0] == '"a\nb",2024-01-01,1.5,0'


def test_resolve_model_carries_the_horizon_spread_factor_and_none_for_a_version_without_it():
    package = {"ModelPackageArn": "arn:aws:sagemaker:us-east-1:1:model-package/g/1"}
    with_factor = {**package, "CustomerMetadataProperties": {contracts.HORIZON_SPREAD_KEY: "2.5"}}
    assert resolve_model.describe_resolved(with_factor)[contracts.HORIZON_SPREAD_KEY] == "2.5"
    assert resolve_model.describe_resolved(package)[contracts.HORIZON_SPREAD_KEY] is None
