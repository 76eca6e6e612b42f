"""The request walker beyond botocore's own checks: a union shape (exactly one member) is refused with
none or two of its members set, as SageMaker refuses it."""

from __future__ import annotations

import copy
import functools

from processing.kernel.aws_validation import request_problems


@functools.lru_cache(maxsize=None)
def _project_request() -> dict:
    """The AutoML V2 request the AutoML step sends with the default parameters."""
    from pipelines.run import default_automl_request
    from tests.pipelines.definition_support import sagemaker_settings

    return default_automl_request(sagemaker_settings())


def _with_problem_type(problem_type: dict) -> dict:
    request = copy.deepcopy(_project_request())
    request["AutoMLProblemTypeConfig"] = problem_type
    return request


def test_given_the_projects_one_problem_type_then_the_union_is_valid():
    assert list(_project_request()["AutoMLProblemTypeConfig"]) == ["TimeSeriesForecastingJobConfig"]
    assert request_problems("sagemaker", "CreateAutoMLJobV2", _project_request()) == []


def test_given_two_or_no_problem_types_then_the_union_is_refused_naming_the_members():
    two = dict(_project_request()["AutoMLProblemTypeConfig"], TabularJobConfig={"TargetAttributeName": "target_value"})
    assert request_problems("sagemaker", "CreateAutoMLJobV2", _with_problem_type(two)) == [
        "CreateAutoMLJobV2.AutoMLProblemTypeConfig: exactly one member of AutoMLProblemTypeConfig must be set, got "
        "TimeSeriesForecastingJobConfig, TabularJobConfig (one of: ImageClassificationJobConfig, "
        "TextClassificationJobConfig, TimeSeriesForecastingJobConfig, TabularJobConfig, TextGenerationJobConfig)"
    ]
    none = request_problems("sagemaker", "CreateAutoMLJobV2", _with_problem_type({}))
    assert len(none) == 1 and "must be set, got none" in none[0]
