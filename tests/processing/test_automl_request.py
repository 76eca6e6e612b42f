"""The CreateAutoMLJobV2 request: botocore-valid, Autopilot's limits checked before paying."""

from __future__ import annotations

import re

import pytest

from processing import automl_request
from processing.automl_request import (
    AutoMLRequestError,
    build_request,
    default_filling,
    default_request,
    job_name_for_execution,
)
from processing.kernel.aws_validation import request_problems
from processing.kernel.settings import resolve

ROLE = "arn:aws:iam::123456789012:role/forecast-pipeline"


def _request(**overrides):
    values = dict(
        train_uri="s3://bucket/prefix/executions/abc/PrepareData/train",
        output_uri="s3://bucket/prefix/executions/abc/AutoML/output",
        job_name="fc-abc",
        role_arn=ROLE,
    )
    values.update(overrides)
    return build_request(**values)


def _time_series_config(request):
    return request["AutoMLProblemTypeConfig"]["TimeSeriesForecastingJobConfig"]


def test_given_default_parameters_when_building_then_the_request_validates_against_botocore():
    request = default_request(resolve())

    assert request_problems("sagemaker", "CreateAutoMLJobV2", request) == []
    config = _time_series_config(request)
    assert config["ForecastQuantiles"] == ["p10", "p50", "p90"]
    assert config["ForecastHorizon"] == 14
    assert config["HolidayConfig"] == [{"CountryCode": "US"}]
    channel = request["AutoMLJobInputDataConfig"][0]
    assert channel["ChannelType"] == "training"
    assert channel["ContentType"] == "text/csv;header=present"
    assert "OutputDataConfig" in request and "AutoMLJobOutputDataConfig" not in request


def test_given_covariates_and_grouping_when_building_then_filling_is_a_rule_map_per_column():
    request = _request(
        grouping_columns="store, region",
        covariates=["price", "promotion"],
        static_columns=["category"],
        horizon="28",
        quantiles="p5,p50,p95",
        holiday_country="DE",
        aggregation="avg",
    )

    assert request_problems("sagemaker", "CreateAutoMLJobV2", request) == []
    config = _time_series_config(request)
    assert config["TimeSeriesConfig"]["GroupingAttributeNames"] == ["store", "region"]
    assert config["Transformations"]["Filling"] == {
        "target_value": {"middlefill": "zero", "backfill": "zero"},
        "price": {"middlefill": "zero", "backfill": "zero", "futurefill": "zero"},
        "promotion": {"middlefill": "zero", "backfill": "zero", "futurefill": "zero"},
    }
    assert config["Transformations"]["Aggregation"] == {"target_value": "avg"}
    assert config["ForecastHorizon"] == 28


def test_given_a_filling_override_when_building_then_it_is_merged_rule_by_rule_like_prepare_data():
    request = _request(
        covariates=["price"],
        filling={"price": {"futurefill": "value", "futurefill_value": "0", "middlefill": "median"}},
    )

    filling = _time_series_config(request)["Transformations"]["Filling"]
    assert filling["price"] == {
        "futurefill": "value",
        "futurefill_value": "0",
        "middlefill": "median",
        "backfill": "zero",
    }
    assert filling["target_value"] == default_filling("target_value", [])["target_value"]


def test_given_empty_holiday_country_and_algorithms_when_building_then_they_are_omitted():
    config = _time_series_config(_request(holiday_country="", algorithms=""))

    assert "HolidayConfig" not in config
    assert "CandidateGenerationConfig" not in config


@pytest.mark.parametrize(
    "overrides, parameter",
    [
        (dict(horizon=501), "ForecastHorizon=501"),
        (dict(horizon="fourteen"), "ForecastHorizon='fourteen'"),
        (dict(horizon=30, timesteps=100), "quarter of the 100 time steps"),
        (dict(grouping_columns="a,b,c,d,e,f"), "GroupingColumns has 6"),
        (dict(quantiles="0.1,0.5,0.9"), "ForecastQuantiles: '0.1'"),
        (dict(quantiles="p10,p20,p30,p50,p70,p90"), "ForecastQuantiles has 6"),
        (dict(quantiles=""), "ForecastQuantiles has 0"),
        (dict(holiday_country="us"), "HolidayCountry='us'"),
        (dict(holiday_country="US,DE"), "HolidayCountry='US,DE'"),
        (dict(algorithms="cnn-qr,xgboost"), "AutoMLAlgorithms: xgboost"),
        (dict(objective_metric="Accuracy"), "ObjectiveMetric='Accuracy'"),
        (dict(covariates=[f"c{i}" for i in range(14)]), "14 numeric features"),
        (dict(static_columns=[f"s{i}" for i in range(11)]), "11 categorical features"),
        (dict(aggregation="median"), "aggregation='median'"),
        (dict(max_runtime_seconds=0), "MaxAutoMLRuntimeSeconds=0"),
        (dict(job_name="x" * 33), "AutoML job name"),
        (dict(frequency="2Q"), "ForecastFrequency '2Q'"),
        (dict(filling={"target_value": "mean"}), "filling['target_value']: expected a map"),
        (dict(filling={"target_value": {"futurefill": "zero"}}), "'futurefill' is not a fill rule for the target"),
        (dict(filling={"target_value": {"frontfill": "zero"}}), "frontfill='zero' is not one of none"),
        (dict(filling={"target_value": {"backfill": "value"}}), "backfill_value is missing"),
        (
            dict(covariates=["price"], filling={"price": {"futurefill": "value", "futurefill_value": "2.5"}}),
            "no decimal point",
        ),
        (dict(covariates=["price"], filling={"prices": {"middlefill": "zero"}}), "no such column"),
    ],
)
def test_given_a_broken_limit_when_building_then_the_error_names_the_parameter(overrides, parameter):
    with pytest.raises(AutoMLRequestError, match=re.escape(parameter)):
        _request(**overrides)


def test_given_several_broken_limits_when_building_then_every_problem_is_reported_at_once():
    with pytest.raises(AutoMLRequestError) as caught:
        _request(horizon=600, quantiles="0.5", holiday_country="usa")

    assert len(caught.value.problems) == 3


def test_given_the_limits_pass_but_botocore_rejects_when_building_then_the_model_error_is_raised():
    from processing.kernel.aws_validation import RequestValidationError

    with pytest.raises(RequestValidationError, match="RoleArn"):
        _request(role_arn="not-a-role")


@pytest.mark.parametrize(
    "execution_id, expected",
    [
        ("abcd1234efgh", "fc-abcd1234efgh"),
        ("arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abcd1234efgh", "fc-abcd1234efgh"),
    ],
)
def test_given_an_execution_id_when_naming_the_job_then_the_name_is_deterministic(execution_id, expected):
    assert job_name_for_execution(execution_id) == expected
    assert job_name_for_execution(execution_id) == job_name_for_execution(execution_id)


def test_given_long_or_odd_execution_ids_when_naming_then_names_fit_the_pattern_and_stay_distinct():
    ids = ["local-2026-11-26T01:02:03.123456-aaaa", "local-2026-11-26T01:02:03.123456-bbbb", "__x__"]

    names = [job_name_for_execution(i) for i in ids]

    for name in names:
        assert len(name) <= automl_request.JOB_NAME_MAX
        assert automl_request.JOB_NAME_PATTERN.match(name), name
    assert len(set(names)) == len(names)


def test_given_no_execution_id_when_naming_then_the_error_says_what_to_pass():
    with pytest.raises(AutoMLRequestError, match="--execution-id"):
        job_name_for_execution("")


def test_nan_is_not_a_target_fill_method_of_the_automl_request():
    """The API allows zero, value, median, mean, min, max for middlefill and backfill (issue 18)."""
    from processing.automl_request import filling_problems

    problems = filling_problems({"target_value": {"middlefill": "nan", "backfill": "nan"}}, "target_value")
    assert problems == [
        "filling['target_value']: middlefill='nan' is not one of zero, value, median, mean, min, max",
        "filling['target_value']: backfill='nan' is not one of zero, value, median, mean, min, max",
    ]
