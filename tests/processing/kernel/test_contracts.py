"""The kernel's Autopilot vocabulary, and every layer that checks a quantile name agreeing with it."""

from __future__ import annotations

import pytest

from deploy import api
from evaluation import metrics
from forecasting import config
from processing import automl_request, reporting
from processing.kernel import contracts

ACCEPTED = {"p1": 0.01, "p5": 0.05, "p10": 0.1, "p50": 0.5, "p99": 0.99}
# Autopilot's ForecastQuantile pattern is ^p[1-9]\d?$: no zero, no 100, no leading zero, no decimals
REFUSED = ["p0", "p100", "p05", "p99.9", "p2.5", "0.1", "P10", "q10", "p", ""]


@pytest.mark.parametrize("name, level", ACCEPTED.items())
def test_an_autopilot_quantile_name_is_read_as_its_fraction_everywhere(name, level):
    assert contracts.quantile_fraction(name) == pytest.approx(level)
    assert metrics.quantile_level(name) == pytest.approx(level)
    assert config.quantile_level(name) == pytest.approx(level)
    assert reporting.quantile_level(name) == pytest.approx(level)
    assert automl_request.QUANTILE_PATTERN.match(name) and api.QUANTILE_NAME.match(name)


@pytest.mark.parametrize("name", REFUSED)
def test_a_name_autopilot_refuses_is_refused_everywhere(name):
    assert contracts.quantile_fraction(name) is None
    with pytest.raises(ValueError, match="p1..p99|pNN"):
        metrics.quantile_level(name)
    with pytest.raises(ValueError, match="pNN"):
        config.quantile_level(name)
    with pytest.raises(reporting.ReportInputError, match="p1..p99"):
        reporting.quantile_level(name)
    assert not automl_request.QUANTILE_PATTERN.match(name) and not api.QUANTILE_NAME.match(name)


def test_the_pattern_is_the_one_in_botocores_model():
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.shape_for("TimeSeriesForecastingJobConfig").members["ForecastQuantiles"].member
    assert shape.metadata["pattern"].strip("()") == contracts.QUANTILE_NAME.pattern


def test_the_aggregation_methods_are_autopilots_and_each_has_a_pandas_name():
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    enum = model.shape_for("TimeSeriesTransformations").members["Aggregation"].value.enum
    assert sorted(contracts.AGGREGATIONS) == sorted(enum)
    assert set(contracts.PANDAS_AGGREGATION) == set(contracts.AGGREGATIONS)
    assert automl_request.AGGREGATIONS is config.AGGREGATIONS is contracts.AGGREGATIONS
