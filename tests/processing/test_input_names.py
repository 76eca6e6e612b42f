"""On SageMaker a step reads InputDataUrl from /opt/ml/processing/input/data; its refusals must name what
the user passed (the S3 URI), not that folder. Each step runs here as the local runtime runs it: the
command and arguments of the rendered definition, /opt/ml/processing mapped to a folder of real files,
a fresh interpreter with only the code importable; but without the runtime's own rewriting of paths,
which SageMaker does not do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from processing.kernel.contracts import PROCESSING_ROOT
from tests.pipelines.definition_support import (
    batch_definition,
    default_parameters,
    resolve_expression,
    step,
    training_definition,
)

REPO = Path(__file__).resolve().parents[2]
SALES = "item_id,timestamp,target_value\n" + "".join(f"a,2024-01-{d:02d},{d}\n" for d in range(1, 29))


def run_step(definition: dict, name: str, root: Path, input_url: str, files: dict) -> subprocess.CompletedProcess:
    """Write `files` into the step's data input folder under `root`, run the step's container command."""
    data = root / "input" / "data"
    for relative, text in files.items():
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_text(text, encoding="utf-8")
    app = step(definition, name)["Arguments"]["AppSpecification"]
    parameters = dict(default_parameters(definition), InputDataUrl=input_url)
    arguments = [resolve_expression(a, parameters) for a in app["ContainerArguments"]]
    command = [sys.executable, *app["ContainerEntrypoint"][1:], *arguments]
    command = [part.replace(PROCESSING_ROOT, str(root)) for part in command]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(
        command, cwd=root, env=dict(env, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=120
    )


def refusal(proc: subprocess.CompletedProcess, root: Path) -> str:
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert str(root) not in line and PROCESSING_ROOT not in line, line
    return line


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"manifest.json": "{}"}, "PrepareData failed: input folder s3://bucket/sales/: no .csv"),
        (
            {"2024/a.csv": SALES, "2025/b.csv": SALES.replace("target_value", "units")},
            "PrepareData failed: input folder s3://bucket/sales/: files have different columns. 2025/b.csv vs 2024/a.csv",
        ),
    ],
    ids=["no data files", "different columns"],
)
def test_given_a_bad_input_folder_then_prepare_data_names_the_input_data_url(tmp_path, files, expected):
    line = refusal(run_step(training_definition(), "PrepareData", tmp_path, "s3://bucket/sales/", files), tmp_path)
    assert line.startswith(expected), line


@pytest.mark.parametrize(
    "url, files, expected",
    [
        (
            "s3://bucket/batch/",
            {"a.csv": "id,day,units\na,1,1\n", "b.csv": "id,day,units\nb,1,1\n"},
            "PrepareBatchInput failed: s3://bucket/batch/: columns 'item_id' (ItemIdColumn), 'timestamp' "
            "(TimestampColumn), 'target_value' (TargetColumn) missing; the files have ['id', 'day', 'units']",
        ),
        (
            "s3://bucket/batch/input.csv",
            {"input.csv": "id,day,units\na,2024-01-01,1\n"},
            "PrepareBatchInput failed: s3://bucket/batch/input.csv: columns 'item_id'",
        ),
        (
            "s3://bucket/batch",
            {"notes.txt.bak": "x"},
            "PrepareBatchInput failed: InputDataUrl folder s3://bucket/batch: no",
        ),
    ],
    ids=["folder", "one file", "no data files"],
)
def test_given_a_bad_batch_input_then_prepare_batch_input_names_the_input_data_url(tmp_path, url, files, expected):
    line = refusal(run_step(batch_definition(), "PrepareBatchInput", tmp_path, url, files), tmp_path)
    assert line.startswith(expected), line


def test_given_a_bad_row_in_a_folder_file_then_the_row_is_named_by_the_file_path_in_the_folder(tmp_path):
    bad = SALES.replace("a,2024-01-05,5", "a,2024-01-05,lots")
    line = refusal(
        run_step(training_definition(), "PrepareData", tmp_path, "s3://bucket/sales/", {"2024/a.csv": bad}), tmp_path
    )
    assert "2024/a.csv line 6 ('lots')" in line, line
