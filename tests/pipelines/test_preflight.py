"""pipelines.preflight: the job requests resolved with the start's parameters, checked against botocore's
service model before StartPipelineExecution (no AWS: the definition JSON and a discard-port endpoint)."""

from __future__ import annotations

import pytest

from pipelines import preflight, run
from tests.pipelines.definition_support import BUCKET, REGION, ROLE, batch_definition, batch_text, training_definition


def _url(length: int) -> str:
    head = f"s3://{BUCKET}/"
    return head + "d" * (length - len(head) - 1) + "/"


@pytest.mark.parametrize("definition", [training_definition, batch_definition], ids=["training", "batch"])
def test_given_the_defaults_then_no_job_request_has_a_problem(definition):
    assert preflight.problems(definition()) == []


def test_given_a_local_output_url_on_sagemaker_then_the_report_step_is_named_with_the_param():
    found = preflight.problems(batch_definition(), {"OutputUrl": "./report"})
    assert found == [
        "--param OutputUrl=./report: SageMaker would refuse it in step Report (CreateProcessingJob's "
        "ProcessingOutputConfig.Outputs[0].S3Output.S3Uri): it must be an s3:// URI (a local path or "
        "file:// URL works on --target local only)"
    ]


def test_given_an_input_url_longer_than_a_container_argument_allows_then_the_limit_is_244():
    assert preflight.problems(batch_definition(), {"InputDataUrl": _url(244)}) == []
    (line,) = preflight.problems(batch_definition(), {"InputDataUrl": _url(245)})
    assert line.startswith("--param InputDataUrl=s3://")
    assert "245 characters, at most 244 fit: step PrepareBatchInput passes it as --input-url=<value>" in line
    assert "limits to 256 characters" in line and "\n" not in line


def test_given_a_bad_output_url_when_starting_on_sagemaker_then_refused_before_any_aws_call(monkeypatch, capsys):
    monkeypatch.setattr(run, "render", lambda name, settings: batch_text())
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # a call would fail with exit code 1
    code = run.main(
        ["--target", "sagemaker", "--region", REGION, "--bucket", BUCKET, "--role-arn", ROLE, "--pipeline", "batch"]
        + ["--param", "OutputUrl=./report", "--param", f"InputDataUrl={_url(300)}"],
        log=lambda line: None,
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert [line.split(":", 1)[0] for line in lines] == ["error", "error"]
    assert lines[0].startswith("error: --param InputDataUrl=s3://") and "at most 244 fit" in lines[0]
    assert lines[1].startswith("error: --param OutputUrl=./report:") and lines[1].endswith("; nothing was started")


def test_given_the_training_pipeline_then_prepare_data_has_the_same_input_url_limit():
    assert preflight.problems(training_definition(), {"InputDataUrl": _url(244)}) == []
    (line,) = preflight.problems(training_definition(), {"InputDataUrl": _url(245)})
    assert "at most 244 fit: step PrepareData passes it as --input-url=<value>" in line


def test_given_a_mistyped_instance_type_then_one_short_line_names_every_step_and_the_nearest_type():
    """It was one line per processing step, each quoting botocore's whole list of ~200 instance types."""
    found = preflight.problems(training_definition(), {"ProcessingInstanceType": "ml.m5.larg"})
    assert len(found) == 1 and len(found[0]) < 400, found
    assert found[0].startswith(
        "--param ProcessingInstanceType=ml.m5.larg: SageMaker would refuse it in steps PrepareData, AutoML, "
    )
    assert found[0].endswith("(did you mean --param ProcessingInstanceType=ml.m5.large?)")
