from __future__ import annotations

import pytest

from forecasting import EngineConfig
from forecasting.config import quantile_level
from forecasting.models import DeepAR, Prophet, candidate_names, display_name


def _request(**ts_overrides):
    ts = {
        "ForecastFrequency": "D",
        "ForecastHorizon": 14,
        "ForecastQuantiles": ["p10", "p50", "p90"],
        "TimeSeriesConfig": {
            "TargetAttributeName": "target_value",
            "TimestampAttributeName": "timestamp",
            "ItemIdentifierAttributeName": "item_id",
            "GroupingAttributeNames": ["region"],
        },
        "Transformations": {
            "Filling": {"promotion": {"middlefill": "zero", "futurefill": "zero"}},
            "Aggregation": {"target_value": "sum"},
        },
        "HolidayConfig": [{"CountryCode": "US"}],
        "CandidateGenerationConfig": {"AlgorithmsConfig": [{"AutoMLAlgorithms": ["ets", "npts", "cnn-qr"]}]},
        "CompletionCriteria": {"MaxAutoMLJobRuntimeInSeconds": 3600},
    }
    ts.update(ts_overrides)
    return {
        "AutoMLJobName": "j",
        "AutoMLProblemTypeConfig": {"TimeSeriesForecastingJobConfig": ts},
        "AutoMLJobObjective": {"MetricName": "WAPE"},
    }


def test_given_a_v2_request_when_parsed_then_every_field_is_read():
    config = EngineConfig.from_automl_request(_request())
    assert (config.item_id_column, config.timestamp_column, config.target_column) == (
        "item_id",
        "timestamp",
        "target_value",
    )
    assert config.grouping_columns == ("region",)
    assert config.horizon == 14 and config.frequency == "D" and config.season_length == 7
    assert config.quantile_levels == (0.1, 0.5, 0.9)
    assert config.objective == "WAPE" and config.holiday_country == "US"
    assert config.algorithms == ("ets", "npts", "cnn-qr")
    assert config.filling["promotion"]["futurefill"] == "zero"
    assert config.max_runtime_seconds == 3600


def _installed(monkeypatch, prophet: bool, torch: bool):
    monkeypatch.setattr(Prophet, "available", classmethod(lambda cls: prophet))
    monkeypatch.setattr(DeepAR, "available", classmethod(lambda cls: torch))


def test_given_no_optional_packages_when_mapped_then_stand_ins_play_and_are_named_honestly(monkeypatch):
    _installed(monkeypatch, prophet=False, torch=False)
    names = candidate_names(("ets", "npts", "cnn-qr", "deepar", "prophet"))
    assert names == [
        "SeasonalNaive",
        "NPTS",
        "DynamicRegression",
        "LightGBM",
        "LightGBMSeasonal",
        "ETS",
    ]  # cheapest first
    assert display_name("LightGBM") == "LightGBM (global, stands in for cnn-qr/deepar)"
    assert display_name("DynamicRegression") == "DynamicRegression (Prophet-style, stands in for prophet)"
    assert "Prophet" not in candidate_names(preset="best_quality")


def test_given_the_optional_packages_when_mapped_then_the_genuine_models_play_their_parts(monkeypatch):
    _installed(monkeypatch, prophet=True, torch=True)
    names = candidate_names(("cnn-qr", "deepar", "prophet"))
    assert names == ["SeasonalNaive", "LightGBM", "LightGBMSeasonal", "DeepAR", "Prophet"]
    assert display_name("LightGBM") == "LightGBM (global, stands in for cnn-qr)"
    assert display_name("DynamicRegression") == "DynamicRegression (Prophet-style)"
    assert display_name("Prophet") == "Prophet"
    assert display_name("DeepAR") == "DeepAR (DeepAR-style RNN, torch)"
    assert {"Prophet", "DeepAR"} <= set(candidate_names(preset="best_quality"))


def test_given_one_optional_package_when_mapped_then_only_its_algorithm_changes_hands(monkeypatch):
    _installed(monkeypatch, prophet=False, torch=True)
    assert candidate_names(("deepar", "prophet")) == ["SeasonalNaive", "DynamicRegression", "DeepAR"]
    assert display_name("LightGBM") == "LightGBM (global, stands in for cnn-qr)"


def test_given_an_unknown_algorithm_when_mapped_then_the_error_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown algorithm 'xgboost'.*arima.*cnn-qr"):
        candidate_names(("xgboost",))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("ForecastFrequency", "fortnightly", "ForecastFrequency 'fortnightly'"),
        ("ForecastQuantiles", ["q10"], "ForecastQuantiles entry 'q10'"),
        ("ForecastHorizon", 0, "ForecastHorizon must be a positive integer"),
    ],
)
def test_given_a_bad_field_when_parsed_then_the_error_names_it(field, value, message):
    with pytest.raises(ValueError, match=message):
        EngineConfig.from_automl_request(_request(**{field: value}))


def test_given_an_unsupported_objective_when_parsed_then_the_error_lists_the_supported_ones():
    request = _request()
    request["AutoMLJobObjective"] = {"MetricName": "Accuracy"}
    with pytest.raises(
        ValueError, match="MetricName 'Accuracy' is not supported; use one of AverageWeightedQuantileLoss"
    ):
        EngineConfig.from_automl_request(request)


def test_given_a_request_without_time_series_config_when_parsed_then_it_says_what_is_missing():
    with pytest.raises(ValueError, match="no AutoMLProblemTypeConfig.TimeSeriesForecastingJobConfig"):
        EngineConfig.from_automl_request({"AutoMLProblemTypeConfig": {}})


def test_quantile_names_map_to_levels():
    assert quantile_level("p10") == pytest.approx(0.1)
    # Autopilot's pattern ^p[1-9]\d?$ has no decimals: the engine refuses what CreateAutoMLJobV2 would
    with pytest.raises(ValueError, match="p99.5"):
        quantile_level("p99.5")


def test_given_quantiles_out_of_order_when_configured_then_they_are_kept_ascending():
    # the engine reads the first and last quantile as the band's bounds; p90,p10 must not invert it
    from forecasting import EngineConfig

    config = EngineConfig(quantiles=("p90", "p10", "p50"))
    assert config.quantiles == ("p10", "p50", "p90") and config.quantile_levels == (0.1, 0.5, 0.9)


def test_given_a_short_panel_when_windows_are_chosen_then_it_gets_more_backtest_windows():
    import numpy as np

    quarterly = EngineConfig(frequency="3M", horizon=8)
    assert quarterly.windows_for(np.full(20, 68)) == 5  # 20 series x 8 steps: 160 points a window
    # each window leaves at least WINDOW_HISTORY_HORIZONS (2) horizons: 44 quarters hold 3 windows, 36 two
    assert quarterly.windows_for(np.full(20, 44)) == 3
    assert quarterly.windows_for(np.full(20, 36)) == 2
    daily = EngineConfig(frequency="D", horizon=14)
    assert daily.windows_for(np.full(125, 1081)) == 2  # 1,750 points a window: the default is enough
    assert daily.windows_for(np.full(1, 351)) == 5
    assert EngineConfig(frequency="D", horizon=14, max_backtest_windows=3).windows_for(np.full(1, 351)) == 3
    assert EngineConfig(frequency="D", horizon=14, backtest_windows=4).windows_for(np.full(125, 1081)) == 4


def test_given_a_large_panel_when_planned_then_only_candidates_that_scale_are_left_in():
    config = EngineConfig()  # the 240 s per-candidate budget, no job limit
    per_series = ("ETS", "ARIMA", "Theta", "Prophet", "DeepAR")
    # the seed's 125 series: every candidate may run
    assert all(config.too_costly_for_panel(n, 125, 2) is None for n in per_series)
    # 25,000 series: the per-series searches and DeepAR's sampling are left out before they start
    reasons = {n: config.too_costly_for_panel(n, 25_000, 2) for n in per_series}
    assert all(reasons.values()), reasons
    assert "ETS: projected ~6000s of backtests for 25000 series x 2 window(s)" in reasons["ETS"]
    assert "left out for this panel size" in reasons["ETS"]
    # the ones whose cost is bounded (a row sample, milliseconds per series) always run
    assert all(config.too_costly_for_panel(n, 25_000, 2) is None for n in ("SeasonalNaive", "NPTS", "LightGBM"))
    # Prophet, the dearest per series, goes first as the panel grows; DeepAR's sampling goes by 5,000
    assert config.too_costly_for_panel("Prophet", 1_000, 2) and not config.too_costly_for_panel("ETS", 1_000, 2)
    assert not config.too_costly_for_panel("DeepAR", 1_000, 2) and config.too_costly_for_panel("DeepAR", 5_000, 2)


def test_given_a_tight_job_limit_when_planned_then_the_limit_share_is_the_budget():
    generous = EngineConfig(max_runtime_seconds=14_400)
    tight = EngineConfig(max_runtime_seconds=60)
    assert generous.candidate_budget_seconds(candidates=6) == 240.0  # the per-series budget is tighter
    assert tight.candidate_budget_seconds(candidates=6) == pytest.approx(60 * 0.75 / 6 * 2)
    assert generous.too_costly_for_panel("ETS", 1_000, 2, candidates=6) is None
    assert tight.too_costly_for_panel("ETS", 1_000, 2, candidates=6)
    assert EngineConfig(statistical_budget_seconds=None).too_costly_for_panel("ETS", 10**6, 2) is None


def test_given_daily_or_monthly_data_when_the_engine_lists_candidates_then_the_seasonal_lightgbm_suits_monthly_panels_only():
    """LightGBMSeasonal comes along with LightGBM (preset or cnn-qr) and suits monthly/quarterly
    panels of at least 100 series (on daily panels of 10-99 series SeasonalETS took its place)."""
    from forecasting.models import CANDIDATES

    assert "LightGBMSeasonal" in candidate_names(("cnn-qr",)) and "LightGBMSeasonal" in candidate_names()
    seasonal = CANDIDATES["LightGBMSeasonal"]
    assert seasonal.suits(EngineConfig(frequency="M", horizon=12), 145)
    assert seasonal.suits(EngineConfig(frequency="3M", horizon=8), 100)
    assert not seasonal.suits(EngineConfig(frequency="M", horizon=12), 32)
    assert not seasonal.suits(EngineConfig(frequency="D", horizon=14), 500)
    assert not seasonal.suits(EngineConfig(frequency="D", horizon=14), 125)  # the seed: over the CPU budget
    assert not seasonal.suits(EngineConfig(frequency="D", horizon=14), 1)  # elecdaily: no gain
    assert not seasonal.suits(EngineConfig(frequency="D", horizon=14), 24)  # nycflights: SeasonalETS instead
    assert not seasonal.suits(EngineConfig(frequency="H", horizon=24), 24)
    assert not seasonal.suits(EngineConfig(frequency="W", horizon=13), 500)
    assert CANDIDATES["LightGBM"].suits(EngineConfig(frequency="D", horizon=14), 1)
