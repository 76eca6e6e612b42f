from __future__ import annotations

import pytest

from forecasting import EngineConfig
from forecasting.config import quantile_level
from forecasting.models import candidate_names, display_name


def _request(**ts_overrides):
    ts = {
        "ForecastFrequency": "D", "ForecastHorizon": 14, "ForecastQuantiles": ["p10", "p50", "p90"],
        "TimeSeriesConfig": {"TargetAttributeName": "target_value", "TimestampAttributeName": "timestamp",
                             "ItemIdentifierAttributeName": "item_id", "GroupingAttributeNames": ["region"]},
        "Transformations": {"Filling": {"promotion": {"middlefill": "zero", "futurefill": "zero"}},
                            "Aggregation": {"target_value": "sum"}},
        "HolidayConfig": [{"CountryCode": "US"}],
        "CandidateGenerationConfig": {"AlgorithmsConfig": [{"AutoMLAlgorithms": ["ets", "npts", "cnn-qr"]}]},
        "CompletionCriteria": {"MaxAutoMLJobRuntimeInSeconds": 3600},
    }
    ts.update(ts_overrides)
    return {"AutoMLJobName": "j", "AutoMLProblemTypeConfig": {"TimeSeriesForecastingJobConfig": ts},
            "AutoMLJobObjective": {"MetricName": "WAPE"}}


def test_given_a_v2_request_when_parsed_then_every_field_is_read():
    config = EngineConfig.from_automl_request(_request())
    assert (config.item_id_column, config.timestamp_column, config.target_column) == ("item_id", "timestamp", "target_value")
    assert config.grouping_columns == ("region",)
    assert config.horizon == 14 and config.frequency == "D" and config.season_length == 7
    assert config.quantile_levels == (0.1, 0.5, 0.9)
    assert config.objective == "WAPE" and config.holiday_country == "US"
    assert config.algorithms == ("ets", "npts", "cnn-qr")
    assert config.filling["promotion"]["futurefill"] == "zero"
    assert config.max_runtime_seconds == 3600


def test_given_autopilot_algorithms_when_mapped_then_stand_ins_are_named_honestly():
    names = candidate_names(("ets", "npts", "cnn-qr", "deepar"))
    assert names == ["SeasonalNaive", "NPTS", "LightGBM", "ETS"]  # cheapest first
    assert "stands in for cnn-qr/deepar" in display_name("LightGBM")


def test_given_an_unknown_algorithm_when_mapped_then_the_error_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown algorithm 'xgboost'.*arima.*cnn-qr"):
        candidate_names(("xgboost",))


@pytest.mark.parametrize("field, value, message", [
    ("ForecastFrequency", "fortnightly", "ForecastFrequency 'fortnightly'"),
    ("ForecastQuantiles", ["q10"], "ForecastQuantiles entry 'q10'"),
    ("ForecastHorizon", 0, "ForecastHorizon must be a positive integer"),
])
def test_given_a_bad_field_when_parsed_then_the_error_names_it(field, value, message):
    with pytest.raises(ValueError, match=message):
        EngineConfig.from_automl_request(_request(**{field: value}))


def test_given_an_unsupported_objective_when_parsed_then_the_error_lists_the_supported_ones():
    request = _request()
    request["AutoMLJobObjective"] = {"MetricName": "Accuracy"}
    with pytest.raises(ValueError, match="MetricName 'Accuracy' is not supported; use one of AverageWeightedQuantileLoss"):
        EngineConfig.from_automl_request(request)


def test_given_a_request_without_time_series_config_when_parsed_then_it_says_what_is_missing():
    with pytest.raises(ValueError, match="no AutoMLProblemTypeConfig.TimeSeriesForecastingJobConfig"):
        EngineConfig.from_automl_request({"AutoMLProblemTypeConfig": {}})


def test_quantile_names_map_to_levels():
    assert quantile_level("p10") == pytest.approx(0.1)
    assert quantile_level("p99.5") == pytest.approx(0.995)
