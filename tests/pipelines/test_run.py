"""python -m pipelines.run: definition-only offline, upsert + start on a moto server, --wait, errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from pipelines import run
from processing.kernel.aws_validation import request_problems
from tests.pipelines.definition_support import (
    BLOCK_SOCKETS_PRELUDE,
    BUCKET,
    REGION,
    ROLE,
    sagemaker_settings,
    training_text,
)

ROOT = Path(__file__).resolve().parents[2]
SEED = Path("/work/shared/seed/sagemaker-automl-time-series-forecasting-recipe.md")

# The recipe's CreateAutoMLJobV2 request (seed step 3, automl_job_config.json), verbatim.
RECIPE_AUTOML_REQUEST = textwrap.dedent("""\
{
    "AutoMLJobName": "${AUTOML_JOB_NAME}",
    "AutoMLJobInputDataConfig": [
        {
            "ChannelName": "training",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": "s3://${FORECAST_BUCKET}/automl-data/train/",
                    "S3DataDistributionType": "FullyReplicated"
                }
            },
            "ContentType": "text/csv",
            "CompressionType": "None",
            "TargetAttributeName": "target_value"
        }
    ],
    "AutoMLJobOutputDataConfig": {
        "S3OutputPath": "s3://${FORECAST_BUCKET}/automl-output/"
    },
    "RoleArn": "${SAGEMAKER_ROLE_ARN}",
    "AutoMLProblemTypeConfig": {
        "TimeSeriesForecastingJobConfig": {
            "ForecastFrequency": "D",
            "ForecastHorizon": 14,
            "TimeSeriesConfig": {
                "TargetAttributeName": "target_value",
                "TimestampAttributeName": "timestamp",
                "ItemIdentifierAttributeName": "item_id"
            },
            "ForecastQuantiles": ["0.1", "0.5", "0.9"],
            "Transformations": {
                "Filling": {
                    "target_value": "mean"
                },
                "Aggregation": {
                    "target_value": "sum"
                }
            },
            "CandidateGenerationConfig": {
                "AlgorithmsConfig": [
                    {
                        "AutoMLAlgorithms": [
                            "cnn-qr",
                            "deepar",
                            "prophet",
                            "npts",
                            "arima",
                            "ets"
                        ]
                    }
                ]
            }
        }
    },
    "AutoMLJobObjective": {
        "MetricName": "MAPE"
    },
    "ModelDeployConfig": {
        "AutoGenerateEndpointName": true,
        "EndpointName": "automl-forecast-endpoint-${RANDOM_SUFFIX}"
    }
}""")


def _recipe_request() -> dict:
    values = {
        "AUTOML_JOB_NAME": "retail-demand-forecast-abc123",
        "FORECAST_BUCKET": "automl-forecasting-abc123",
        "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/AutoMLForecastingRole",
        "RANDOM_SUFFIX": "abc123",
    }
    return json.loads(re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], RECIPE_AUTOML_REQUEST))


def _cli(*args: str, env_extra: dict | None = None, prelude: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FORECAST_"))}
    env.update({"PYTHONPATH": str(ROOT)}, **(env_extra or {}))
    code = prelude + f"\nimport sys\nfrom pipelines.run import main\nsys.exit(main({list(args)!r}))\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=240)


# --- definition-only ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def definition_dir(tmp_path_factory):
    """One offline --definition-only run in a fresh interpreter: no credentials, sockets blocked."""
    out = tmp_path_factory.mktemp("definition")
    result = _cli(
        "--target",
        "sagemaker",
        "--region",
        REGION,
        "--bucket",
        BUCKET,
        "--role-arn",
        ROLE,
        "--definition-only",
        str(out),
        prelude=BLOCK_SOCKETS_PRELUDE,
        env_extra={"FORECAST_HOME": str(out / "home")},
    )
    return out, result


def test_given_no_network_when_rendering_definition_only_then_files_are_written_without_any_connection(definition_dir):
    out, result = definition_dir
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "target: sagemaker (set by --target)"
    assert "NETWORK-ATTEMPTS=0 " in result.stdout, result.stdout
    assert {p.name for p in out.iterdir()} >= {"training.json", "automl_request.json"}


def test_given_definition_only_then_training_json_is_the_rendered_definition(definition_dir):
    out, _ = definition_dir
    written = json.loads((out / "training.json").read_text())
    assert re.sub(r"/code/[0-9a-f]{16}/", "/code/X/", json.dumps(written)) == re.sub(
        r"/code/[0-9a-f]{16}/", "/code/X/", json.dumps(json.loads(training_text()))
    )


def test_given_definition_only_then_our_automl_request_passes_botocore_and_the_recipes_has_nine_violations(
    definition_dir,
):
    out, _ = definition_dir
    ours = json.loads((out / "automl_request.json").read_text())
    assert request_problems("sagemaker", "CreateAutoMLJobV2", ours) == []
    assert ours["AutoMLProblemTypeConfig"]["TimeSeriesForecastingJobConfig"]["ForecastQuantiles"] == [
        "p10",
        "p50",
        "p90",
    ]
    assert ours["RoleArn"] == ROLE and ours["OutputDataConfig"]["S3OutputPath"].startswith(f"s3://{BUCKET}/")
    recipe_problems = request_problems("sagemaker", "CreateAutoMLJobV2", _recipe_request())
    assert len(recipe_problems) == 9, recipe_problems


@pytest.mark.skipif(not SEED.is_file(), reason="seed recipe not available")
def test_given_the_seed_markdown_then_the_embedded_recipe_request_is_verbatim():
    block = re.search(r"cat > automl_job_config.json << EOF\n(.*?)\n\s*EOF\n", SEED.read_text(), re.S).group(1)
    assert textwrap.dedent(block) == RECIPE_AUTOML_REQUEST


def test_given_sagemaker_target_without_region_when_definition_only_then_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    code = run.main(
        ["--target", "sagemaker", "--bucket", BUCKET, "--role-arn", ROLE, "--definition-only", str(tmp_path)],
        log=lambda line: None,
    )
    assert code == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: no AWS region: pass --region or set FORECAST_REGION, AWS_REGION or AWS_DEFAULT_REGION, "
        "the first one set; region in forecast.toml"
    )
    assert list(tmp_path.iterdir()) == []


def test_given_sagemaker_target_without_role_then_the_error_says_how_to_set_it(monkeypatch, capsys):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    code = run.main(["--target", "sagemaker", "--bucket", BUCKET, "--region", REGION, "--no-start"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (
        "error: no SageMaker execution role: pass --role-arn or set FORECAST_ROLE_ARN "
        "(python -m pipelines.bootstrap creates one)"
    )


# --- parameters -------------------------------------------------------------------------------------
def test_given_overrides_then_they_are_typed_like_the_parameters():
    definition = json.loads(training_text())
    typed = run.check_overrides(
        definition,
        run.parse_overrides(["ForecastHorizon=28", "QualityThreshold=0.25", "GroupingColumns=", "HolidayCountry=DE"]),
    )
    assert typed == {"ForecastHorizon": 28, "QualityThreshold": 0.25, "GroupingColumns": "", "HolidayCountry": "DE"}


@pytest.mark.parametrize(
    "pair, message",
    [
        ("Horizon=3", "--param Horizon: not a parameter of this pipeline (did you mean --param ForecastHorizon=3?);"),
        ("QualityTreshold=0.2", "did you mean --param QualityThreshold=0.2?"),
        ("forecasthorizon=7", "did you mean --param ForecastHorizon=7?"),
        ("Zzz=1", "--param Zzz: not a parameter of this pipeline; known: AutoMLAlgorithms"),
        ("ForecastHorizon=two", "--param ForecastHorizon=two: must be a whole number (Integer parameter), got 'two'"),
        (
            "QualityThreshold=abc",
            "--param QualityThreshold=abc: must be a number (Float parameter), got 'abc'; "
            "for example --param QualityThreshold=0.3",
        ),
        ("ForecastHorizon", "--param 'ForecastHorizon': expected Name=Value"),
        ("ForecastHorizon=0", "--param ForecastHorizon=0: ForecastHorizon must be from 1 to 500"),
        ("ForecastHorizon=501", "--param ForecastHorizon=501: ForecastHorizon must be from 1 to 500"),
        (
            "ChallengerTolerance=-0.5",
            "--param ChallengerTolerance=-0.5: ChallengerTolerance must be a number >= 0 (0.05 lets a challenger "
            "be up to 5% worse than the champion); nothing was started. For example --param ChallengerTolerance=0.05",
        ),
        ("ChallengerTolerance=nan", "--param ChallengerTolerance=nan: ChallengerTolerance must be a number >= 0"),
        ("ChallengerTolerance=inf", "--param ChallengerTolerance=inf: ChallengerTolerance must be a number >= 0"),
    ],
)
def test_given_a_bad_override_then_the_error_names_it(pair, message):
    definition = json.loads(training_text())
    with pytest.raises(run.RunError, match=re.escape(message)):
        run.check_overrides(definition, run.parse_overrides([pair]))


def test_the_input_parameters_of_the_training_definition_are_the_ones_a_step_reads_data_from():
    from pipelines.local.executors import input_parameters

    assert input_parameters(json.loads(training_text())) == ["InputDataUrl"]


def test_given_a_local_input_that_does_not_exist_then_it_is_refused_naming_the_param_as_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sales.csv").write_text("x\n1\n")
    definition = json.loads(training_text())
    with pytest.raises(run.RunError) as refused:
        run.check_local_inputs(definition, {"InputDataUrl": "./sale.csv"})
    assert refused.value.code == 2
    assert str(refused.value) == (
        f"--param InputDataUrl=./sale.csv: there is no file or folder at {tmp_path / 'sale.csv'} (did you mean "
        "--param InputDataUrl=./sales.csv?); pass an existing CSV/Parquet file or a folder of them; nothing was started"
    )
    missing = tmp_path / "nope.csv"
    with pytest.raises(run.RunError, match=re.escape(f"InputDataUrl={missing}: there is no such file or folder;")):
        run.check_local_inputs(definition, {"InputDataUrl": str(missing)})
    for fine in ("./sales.csv", str(tmp_path), "s3://bucket/none.csv", ""):
        run.check_local_inputs(definition, {"InputDataUrl": fine})


def test_given_a_missing_input_file_when_running_locally_then_exit_2_before_anything_starts(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code = run.main(["--no-start", "--param", "InputDataUrl=./nope.csv"], log=lambda line: None)
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"error: --param InputDataUrl=./nope.csv: there is no file or folder at {tmp_path / 'nope.csv'}; pass an "
        "existing CSV/Parquet file or a folder of them; nothing was started\n"
    )


def test_given_relative_local_paths_for_url_parameters_then_local_runs_record_them_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixed = run.absolute_local_paths(
        {"OutputUrl": "./report", "InputDataUrl": "s3://b/k", "ForecastHorizon": 7, "ItemIdColumn": "sku"}
    )
    assert fixed == {
        "OutputUrl": str(tmp_path / "report"),
        "InputDataUrl": "s3://b/k",
        "ForecastHorizon": 7,
        "ItemIdColumn": "sku",
    }


def test_given_help_then_both_pipelines_parameters_are_listed_with_type_default_and_meaning(capsys):
    with pytest.raises(SystemExit):
        run.main(["--help"])
    text = capsys.readouterr().out
    from pipelines.batch import parameter_specs as batch_specs
    from pipelines.training import parameter_specs as training_specs

    settings = run.Settings()
    for spec in training_specs(settings) + batch_specs(settings):
        line = next((s for s in text.splitlines() if s.split()[:1] == [spec.name]), None)
        assert line is not None, spec.name
        assert spec.kind in line and "default" in line
        assert spec.help in text
    assert "training (--pipeline training" in text and "batch (--pipeline batch)" in text
    assert "ServiceLevel" in text and "Float    default 0.9" in text


@pytest.mark.integration
def test_given_the_batch_specs_then_the_definition_declares_exactly_those_parameters():
    from pipelines.batch import parameter_specs

    declared = {
        p["Name"]: (p["Type"], p.get("DefaultValue"))
        for p in json.loads(run.render("batch", run.Settings()))["Parameters"]
    }
    assert declared == {s.name: (s.kind, s.default) for s in parameter_specs(run.Settings())}


# --- SageMaker target against moto ------------------------------------------------------------------
def _sagemaker_client():
    return boto3.session.Session(region_name=REGION).client("sagemaker")


def test_given_moto_when_upserting_twice_then_created_then_updated_and_started_with_overrides(
    moto_endpoint, monkeypatch
):
    monkeypatch.setattr(run, "render", lambda name, settings: training_text())  # rendered once per session
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    s3 = boto3.session.Session(region_name=REGION).client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    lam = boto3.session.Session(region_name=REGION).client("lambda")
    layer = lam.publish_layer_version(
        LayerName="AWSSDKPandas-Python312",
        Content={"ZipFile": b"PK\x05\x06" + b"\0" * 18},
        CompatibleRuntimes=["python3.12"],
    )["LayerVersionArn"]
    monkeypatch.setenv("FORECAST_PANDAS_LAYER_ARN", layer)
    lines: list[str] = []
    base = ["--target", "sagemaker", "--region", REGION, "--bucket", BUCKET, "--role-arn", ROLE]

    from pipelines.code_bundle import bundle_uri

    bundle_before = bundle_uri(sagemaker_settings())
    assert run.main(base + ["--no-start"], log=lines.append) == 0
    assert lines[0] == "target: sagemaker (set by --target)"
    assert any(line.startswith("created pipeline DemandForecastTraining") for line in lines)
    assert any("code bundle:" in line and "uploaded" in line for line in lines)
    sm = _sagemaker_client()
    described = sm.describe_pipeline(PipelineName="DemandForecastTraining")
    assert json.loads(described["PipelineDefinition"]) == json.loads(training_text())
    assert described["RoleArn"] == ROLE
    function = (
        boto3.session.Session(region_name=REGION)
        .client("lambda")
        .get_function(FunctionName="demand-forecast-deploy")["Configuration"]
    )
    from tests.pipelines.definition_support import step

    assert step(json.loads(described["PipelineDefinition"]), "Deploy")["FunctionArn"] == function["FunctionArn"]
    api = lam.get_function(FunctionName="demand-forecast-api")["Configuration"]
    assert api["Handler"] == "deploy.api.handler" and [x["Arn"] for x in api["Layers"]] == [layer]
    assert lam.get_function_url_config(FunctionName="demand-forecast-api")["AuthType"] == "AWS_IAM"
    assert any(line.startswith("forecast API: ") for line in lines)

    lines.clear()
    assert run.main(base + ["--param", "ForecastHorizon=28", "--param", "QualityThreshold=0.2"], log=lines.append) == 0
    assert any(line.startswith("updated pipeline DemandForecastTraining") for line in lines)
    if bundle_uri(sagemaker_settings()) == bundle_before:  # (a shared working tree may change meanwhile)
        assert any("already uploaded" in line for line in lines)
    (started,) = [line.split()[-1] for line in lines if line.startswith("started execution ")]
    assert any(line.startswith("follow it in SageMaker Studio: https://") for line in lines)

    executions = sm.list_pipeline_executions(PipelineName="DemandForecastTraining")["PipelineExecutionSummaries"]
    assert [e["PipelineExecutionArn"] for e in executions] == [started]
    parameters = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=started)["PipelineParameters"]
    assert {p["Name"]: p["Value"] for p in parameters} == {"ForecastHorizon": "28", "QualityThreshold": "0.2"}
    assert sm.describe_pipeline_execution(PipelineExecutionArn=started)["PipelineExecutionStatus"] in (
        "Executing",
        "Succeeded",
    )
    tags = sm.list_tags(ResourceArn=described["PipelineArn"])["Tags"]
    assert {"Key": "project", "Value": "demand-forecasting"} in tags


def test_given_no_pandas_layer_when_running_on_sagemaker_then_the_api_is_skipped_with_a_warning(
    moto_endpoint, monkeypatch
):
    """moto has no AWS public SSM parameters: the layer lookup fails, the pipeline is still upserted."""
    monkeypatch.setattr(run, "render", lambda name, settings: training_text())
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("FORECAST_PANDAS_LAYER_ARN", raising=False)
    boto3.session.Session(region_name=REGION).client("s3").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    lines: list[str] = []

    assert (
        run.main(
            ["--target", "sagemaker", "--region", REGION, "--bucket", BUCKET, "--role-arn", ROLE, "--no-start"],
            log=lines.append,
        )
        == 0
    )

    [warning] = [line for line in lines if line.startswith("warning: the forecast API")]
    assert "FORECAST_PANDAS_LAYER_ARN" in warning and "python -m deploy.api_infrastructure" in warning
    assert any(line.startswith("created pipeline DemandForecastTraining") for line in lines)


# --- --wait -----------------------------------------------------------------------------------------
EXECUTION_ARN = "arn:aws:sagemaker:eu-west-1:123456789012:pipeline/demandforecasttraining/execution/abc123"


def test_given_a_failing_execution_when_waiting_then_step_changes_are_logged_and_the_reason_returned():
    sm = _sagemaker_client()
    stubber = Stubber(sm)
    by_arn = {"PipelineExecutionArn": EXECUTION_ARN}
    stubber.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": [{"StepName": "PrepareData", "StepStatus": "Executing"}]},
        by_arn,
    )
    stubber.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": "Executing"}, by_arn)
    stubber.add_response(
        "list_pipeline_execution_steps",
        {
            "PipelineExecutionSteps": [
                {
                    "StepName": "AutoML",
                    "StepStatus": "Failed",
                    "FailureReason": "ClientError: AutoML job failed: bad data",
                },
                {"StepName": "PrepareData", "StepStatus": "Succeeded"},
            ]
        },
        by_arn,
    )
    stubber.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": "Failed"}, by_arn)
    lines: list[str] = []
    with stubber:
        code = run.wait(sm, EXECUTION_ARN, poll_seconds=0, log=lines.append, sleep=lambda s: None)
    assert code == 1
    assert lines == [
        "  PrepareData: Executing",
        "  PrepareData: Succeeded",
        "  AutoML: Failed",
        "execution failed: AutoML: ClientError: AutoML job failed: bad data",
    ]


def test_given_a_succeeding_execution_when_waiting_then_exit_code_zero():
    sm = _sagemaker_client()
    stubber = Stubber(sm)
    by_arn = {"PipelineExecutionArn": EXECUTION_ARN}
    stubber.add_response(
        "list_pipeline_execution_steps",
        {"PipelineExecutionSteps": [{"StepName": "QualityGate", "StepStatus": "Succeeded"}]},
        by_arn,
    )
    stubber.add_response("describe_pipeline_execution", {"PipelineExecutionStatus": "Succeeded"}, by_arn)
    with stubber:
        assert run.wait(sm, EXECUTION_ARN, log=lambda line: None, sleep=lambda s: None) == 0


def test_given_an_execution_arn_then_the_studio_link_names_pipeline_and_execution():
    link = run.studio_link(sagemaker_settings(), EXECUTION_ARN)
    assert link.startswith(f"https://{REGION}.console.aws.amazon.com/sagemaker/home?region={REGION}#")
    assert link.endswith("/pipelines/demandforecasttraining/executions/abc123")


# --- local target -----------------------------------------------------------------------------------
@pytest.mark.integration
def test_given_no_role_when_running_with_no_start_then_local_target_and_the_bundle_is_in_the_local_store():
    from pipelines import code_bundle
    from processing.kernel.settings import resolve

    lines: list[str] = []
    assert run.main(["--no-start"], log=lines.append) == 0
    assert lines[0] == "target: local (no SageMaker role is configured)"
    settings = resolve()
    bundle = settings.home_path / "s3" / "forecast-local" / code_bundle.bundle_prefix(settings)
    assert (bundle / "processing" / "entry.py").is_file() and (
        bundle / "processing" / "kernel" / "contracts.py"
    ).is_file()
    assert not (settings.home_path / "executions").exists()
    assert lines[-1] == "--no-start: definition rendered and code bundle stored; nothing started"


def test_given_list_on_the_sagemaker_target_then_the_error_points_to_studio(capsys):
    assert (
        run.main(
            ["--list", "--target", "sagemaker", "--region", REGION, "--bucket", BUCKET, "--role-arn", ROLE],
            log=lambda line: None,
        )
        == 2
    )
    assert "--list shows local executions" in capsys.readouterr().err


def test_given_overrides_then_the_start_request_passes_botocore_with_string_values():
    request = run.start_request(
        "DemandForecastTraining", {"ForecastHorizon": 28, "QualityThreshold": 0.2}, now=(2026, 1, 2, 3, 4, 5, 0, 0, 0)
    )
    assert request["PipelineExecutionDisplayName"] == "DemandForecastTraining-20260102-030405"
    assert request["PipelineParameters"] == [
        {"Name": "ForecastHorizon", "Value": "28"},
        {"Name": "QualityThreshold", "Value": "0.2"},
    ]
    assert request_problems("sagemaker", "StartPipelineExecution", request) == []


def test_given_a_pipeline_name_sagemaker_rejects_when_upserting_then_every_problem_is_listed_before_any_call(
    moto_endpoint,
):
    from processing.kernel.aws_validation import RequestValidationError

    settings = sagemaker_settings()
    with pytest.raises(
        RequestValidationError,
        match=r"CreatePipeline: 2 problem\(s\):\n  CreatePipeline.PipelineName: 'demand_forecast training' does not match",
    ):
        run.upsert(_sagemaker_client(), "demand_forecast training", training_text(), settings, log=lambda line: None)
    assert _sagemaker_client().list_pipelines()["PipelineSummaries"] == []


def test_given_aws_unreachable_when_running_on_sagemaker_then_one_line_error_and_exit_code_one(monkeypatch, capsys):
    monkeypatch.setattr(run, "render", lambda name, settings: training_text())
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    code = run.main(
        ["--target", "sagemaker", "--region", REGION, "--bucket", BUCKET, "--role-arn", ROLE, "--no-start"],
        log=lambda line: None,
    )
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith('error: EndpointConnectionError: Could not connect to the endpoint URL: "http://127.0.0.1:9/')
    assert "\n" not in err


@pytest.mark.integration
def test_given_forecast_horizon_0_when_running_locally_then_it_is_refused_before_any_step_starts(capsys):
    code = run.main(["--param", "ForecastHorizon=0"])
    err = capsys.readouterr().err
    assert code == 2 and "ForecastHorizon must be from 1 to 500" in err and "nothing was started" in err
    from pipelines.local import runtime
    from processing.kernel.settings import resolve

    assert runtime.load_executions(resolve()) == []


def test_given_retry_on_the_sagemaker_target_then_retry_pipeline_execution_is_called_for_the_execution_arn():
    """An execution id becomes the ARN of that pipeline's execution (account from the role, no STS call)."""
    settings = run.settings_from_args(
        run.parser().parse_args(["--target", "sagemaker", "--region", REGION, "--bucket", BUCKET, "--role-arn", ROLE]),
        environ={},
    )
    arn = run.execution_arn("abc123def456", "DemandForecastTraining", settings)
    account = ROLE.split(":")[4]
    assert arn == f"arn:aws:sagemaker:{REGION}:{account}:pipeline/demandforecasttraining/execution/abc123def456"
    assert run.execution_arn(arn, "ignored", settings) == arn
    sm = boto3.session.Session(region_name=REGION).client("sagemaker")
    with Stubber(sm) as stub:
        stub.add_response(
            "retry_pipeline_execution",
            {"PipelineExecutionArn": arn},
            {"PipelineExecutionArn": arn, "ClientRequestToken": ANY},
        )
        assert run.retry_sagemaker(sm, arn) == arn
        stub.assert_no_pending_responses()


def test_given_a_rendered_local_definition_when_run_again_then_it_comes_from_the_cache_until_settings_change(
    tmp_path, monkeypatch
):
    import dataclasses

    from processing.kernel.settings import resolve

    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FORECAST_CACHE_DIR", str(tmp_path / "cache"))
    settings = resolve()
    rendered = []
    monkeypatch.setattr(
        run, "render", lambda name, s: rendered.append(name) or json.dumps({"name": name, "bucket": s.bucket})
    )
    # the first local run renders and keeps the text; the second reads it back without rendering
    first = run.render_local("batch", settings)
    assert run.render_local("batch", settings) == first and rendered == ["batch"]
    assert len(list((tmp_path / "cache" / "definitions").glob("batch-*.json"))) == 1
    # another FORECAST_HOME (a new local home, the benchmarks' temporary ones) or step launcher: the same text
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "another-home"))
    assert run.render_local("batch", dataclasses.replace(resolve(), step_launcher="spawn")) == first
    assert rendered == ["batch"]
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "home"))
    # another setting (or pipeline) is another definition: rendered again
    other = dataclasses.replace(settings, bucket="another-bucket")
    assert json.loads(run.render_local("batch", other))["bucket"] == "another-bucket"
    run.render_local("training", settings)
    assert rendered == ["batch", "batch", "training"]
    # so is a change of the SDK's environment
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(tmp_path / "config.yaml"))
    run.render_local("batch", settings)
    assert rendered[-1] == "batch" and len(rendered) == 4


def test_the_command_ends_as_the_interpreter_would_its_output_flushed_and_atexit_run(tmp_path):
    """`python -m pipelines.run` exits without tearing its modules down (exit_now), but as the interpreter
    would otherwise: its exit code, every line on a pipe, atexit handlers (the AutoML jobs' stop_all)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FORECAST_", "PYTHONUNBUFFERED"))}
    env.update(PYTHONPATH=str(ROOT), FORECAST_HOME=str(tmp_path / "home"))
    script = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "sys.argv = ['pipelines.run'] + sys.argv[1:]\n"
        "runpy.run_module('pipelines.run', run_name='__main__')\n"
    )
    listed = subprocess.run(
        [sys.executable, "-c", script, "--list"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=240
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("target: local") and listed.stdout.rstrip().endswith("atexit ran")
    refused = subprocess.run(
        [sys.executable, "-c", script, "--retry", "abc", "--param", "A=1"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=240,
    )
    assert refused.returncode == 2 and "--retry reruns an execution" in refused.stderr
    assert refused.stdout.rstrip().endswith("atexit ran")


def test_given_a_tolerance_of_zero_or_more_then_it_is_accepted():
    definition = json.loads(training_text())
    assert run.check_overrides(definition, run.parse_overrides(["ChallengerTolerance=0.2"])) == {
        "ChallengerTolerance": 0.2
    }
    assert run.check_overrides(definition, run.parse_overrides(["ChallengerTolerance=0"])) == {
        "ChallengerTolerance": 0.0
    }
