"""python -m pipelines.bootstrap against a moto server: bucket hardening, least-privilege role, idempotence."""

from __future__ import annotations

import json

import boto3
import pytest

from pipelines import bootstrap
from processing.kernel.aws_validation import request_problems
from processing.kernel.settings import SettingsError
from tests.pipelines.definition_support import BUCKET, REGION, sagemaker_settings


def _actions(document: dict) -> set[str]:
    found: set[str] = set()
    for statement in document["Statement"]:
        actions = statement["Action"]
        found.update([actions] if isinstance(actions, str) else actions)
    return found


def test_given_the_policy_templates_then_they_grant_what_the_pipeline_needs_and_nothing_broad():
    values = bootstrap.policy_values(sagemaker_settings(), "123456789012", "ForecastRole")
    policies = bootstrap.role_policies(values)
    everything = [s for document in policies.values() for s in document["Statement"]]
    actions = set().union(*(_actions(d) for d in policies.values()))
    assert {
        "sagemaker:CreateAutoMLJobV2",
        "sagemaker:DescribeAutoMLJobV2",
        "sagemaker:CreateProcessingJob",
        "sagemaker:CreateTransformJob",
        "sagemaker:CreateModel",
        "sagemaker:CreateModelPackage",
        "iam:PassRole",
        "lambda:InvokeFunction",
        "logs:PutLogEvents",
        "s3:GetObject",
        "s3:PutObject",
    } <= actions
    assert not any(a.endswith(":*") or a == "*" for a in actions)
    by_action = {a: s for s in everything for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert by_action["s3:PutObject"]["Resource"] == f"arn:aws:s3:::{BUCKET}/demand-forecasting/*"
    assert by_action["iam:PassRole"]["Resource"] == "arn:aws:iam::123456789012:role/ForecastRole"
    assert (
        by_action["lambda:InvokeFunction"]["Resource"]
        == f"arn:aws:lambda:{REGION}:123456789012:function:demand-forecast-deploy"
    )
    assert "${" not in json.dumps(policies)


def test_given_a_template_with_an_unknown_placeholder_then_the_error_names_file_and_placeholder(tmp_path):
    (tmp_path / "broken.json").write_text('{"Resource": "${Buckett}"}')
    with pytest.raises(ValueError, match=r"broken.json: unknown placeholder \$\{Buckett\}"):
        bootstrap.role_policies({"Bucket": "b"}, tmp_path)


def test_given_moto_when_bootstrapping_twice_then_bucket_and_role_converge(moto_endpoint):
    settings = sagemaker_settings(role_arn=None)
    lines: list[str] = []
    arn = bootstrap.bootstrap(settings, log=lines.append)
    assert arn == "arn:aws:iam::123456789012:role/DemandForecastPipelineRole"
    assert "created bucket forecast-test-bucket" in lines and "created role DemandForecastPipelineRole" in lines

    session = boto3.session.Session(region_name=REGION)
    s3, iam = session.client("s3"), session.client("iam")
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block[k] for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"))
    trust = iam.get_role(RoleName="DemandForecastPipelineRole")["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    names = iam.list_role_policies(RoleName="DemandForecastPipelineRole")["PolicyNames"]
    assert sorted(names) == sorted(bootstrap.role_policies(bootstrap.policy_values(settings, "1", "r")))
    assert iam.list_attached_role_policies(RoleName="DemandForecastPipelineRole")["AttachedPolicies"] == []

    lines.clear()
    assert bootstrap.bootstrap(settings, log=lines.append) == arn
    assert "bucket forecast-test-bucket exists" in lines and "role DemandForecastPipelineRole exists" in lines
    assert len(iam.list_roles()["Roles"]) == 1
    assert sorted(iam.list_role_policies(RoleName="DemandForecastPipelineRole")["PolicyNames"]) == sorted(names)


def test_given_no_bucket_when_bootstrapping_then_one_line_error():
    with pytest.raises(SettingsError, match="no S3 bucket: pass --bucket or set FORECAST_BUCKET"):
        bootstrap.bootstrap(sagemaker_settings(bucket=None))


def test_given_the_bucket_requests_then_they_match_the_s3_model():
    assert (
        request_problems(
            "s3",
            "PutPublicAccessBlock",
            {
                "Bucket": BUCKET,
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            },
        )
        == []
    )
