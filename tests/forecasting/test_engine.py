"""train(): backtests, ensemble, failures contained, artifact round trip, bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from forecasting import EngineConfig, engine, load_model, train
from forecasting.config import PER_SERIES_SECONDS
from forecasting.ensemble import caruana_weights, pinball_loss
from forecasting.models import CANDIDATES
from forecasting.models.base import Candidate
from forecasting.models.local import LocalModel

from .conftest import FAST_LGB, make_frame, split_context


def test_given_one_clearly_best_candidate_when_selecting_then_it_gets_nearly_all_weight():
    rng = np.random.default_rng(0)
    actual = rng.normal(100, 10, 500)
    predictions = np.stack([actual + rng.normal(0, 0.1, 500), actual + 15, actual - 20 + rng.normal(0, 5, 500)])
    weights = caruana_weights(predictions, pinball_loss(actual, 0.5))
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] >= 0.9


def test_given_two_opposite_biases_when_selecting_then_the_ensemble_mixes_them():
    actual = np.linspace(0, 100, 200)
    predictions = np.stack([actual + 10, actual - 10])
    weights = caruana_weights(predictions, pinball_loss(actual, 0.5))
    assert weights == pytest.approx([0.5, 0.5], abs=0.1)


def test_given_a_known_best_mix_of_members_when_selecting_then_greedy_selection_finds_its_weights():
    # the actuals are exactly 0.25 a + 0.75 b; a third member is pure noise and gets nothing
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 10, 1000), rng.normal(0, 10, 1000)
    actual = 0.25 * a + 0.75 * b
    predictions = np.stack([a, b, rng.normal(0, 10, 1000)])
    for level in (0.1, 0.5, 0.9):
        weights = caruana_weights(predictions, pinball_loss(actual, level))
        assert weights == pytest.approx([0.25, 0.75, 0.0], abs=0.051)


def test_given_an_exact_weekly_pattern_when_trained_then_seasonal_naive_takes_all_weight(tmp_path, config):
    frame = make_frame(n_items=3, n_days=70, kind="seasonal", noise=0.0).drop(columns=["promotion"])
    result = train(
        frame, config, tmp_path, candidates=["SeasonalNaive", "NPTS", "DynamicRegression"], log=lambda *_: None
    )
    board = result.leaderboard.set_index("candidate")
    assert board.loc["SeasonalNaive", "ensemble_weight"] == pytest.approx(1.0)
    assert board.loc["SeasonalNaive", "wQL"] == pytest.approx(0.0, abs=1e-9)
    assert result.best_candidate_name == "SeasonalNaive"
    assert (tmp_path / "leaderboard.csv").exists() and (tmp_path / "model" / "leaderboard.csv").exists()


class _Broken(Candidate):
    """A global candidate that raises (a local one would fall back per series instead)."""

    name = "Broken"

    def _predict(self, history, future):
        raise RuntimeError("boom: this candidate always fails")


def test_given_a_candidate_that_raises_when_trained_then_it_is_skipped_and_logged(tmp_path, config, monkeypatch):
    monkeypatch.setitem(CANDIDATES, "Broken", _Broken)
    lines = []
    frame = make_frame(n_items=2, n_days=60)
    result = train(frame, config, tmp_path, candidates=["SeasonalNaive", "Broken", "NPTS"], log=lines.append)
    board = result.leaderboard.set_index("candidate")
    assert board.loc["Broken", "status"].startswith("failed: RuntimeError: boom")
    assert board.loc["Broken", "ensemble_weight"] == 0
    assert any("boom" in line for line in lines)
    model = load_model(result.model_dir)
    assert "Broken" not in model.candidates and "SeasonalNaive" in model.candidates


def test_given_a_per_series_model_that_cannot_fit_any_series_when_trained_then_it_fails_not_passes(
    tmp_path, config, monkeypatch
):
    """A broken install (say, prophet without its Stan backend) must not pass as the model."""
    from forecasting.models.statistical import Theta

    def broken(self, y, h, X, Xf, spec):
        raise ValueError("no backend")

    monkeypatch.setattr(Theta, "_forecast", broken)
    frame = make_frame(n_items=3, n_days=60)
    result = train(frame, config, tmp_path, candidates=["SeasonalNaive", "Theta"], log=lambda *_: None)
    status = result.leaderboard.set_index("candidate").loc["Theta", "status"]
    assert status == (
        "failed: RuntimeError: Theta fell back to seasonal naive on every series; first reason: ValueError: no backend"
    )


def test_given_a_per_series_model_that_fails_on_some_series_when_trained_then_the_log_counts_them(
    tmp_path, config, monkeypatch
):
    from forecasting.models.statistical import Theta

    real = Theta._forecast

    def picky(self, y, h, X, Xf, spec):
        if y.mean() > 65:  # make_frame levels: 50, 60, 70: only the third series
            raise ValueError("degenerate")
        return real(self, y, h, X, Xf, spec)

    monkeypatch.setattr(Theta, "_forecast", picky)
    lines = []
    frame = make_frame(n_items=3, n_days=60)
    result = train(frame, config, tmp_path, candidates=["SeasonalNaive", "Theta"], log=lines.append)
    assert result.leaderboard.set_index("candidate").loc["Theta", "status"] == "ok"
    theta = [line for line in lines if line.strip().startswith("Theta") and "window" in line]
    assert theta and all(
        "; 1 of 3 series fell back to seasonal naive (ValueError: degenerate)" in line for line in theta
    )


def test_given_an_exhausted_time_limit_when_trained_then_only_the_baseline_survives(tmp_path, config):
    frame = make_frame(n_items=2, n_days=80)
    result = train(
        frame,
        config,
        tmp_path,
        time_limit_seconds=1e-6,
        candidates=["SeasonalNaive", "NPTS", "LightGBM"],
        log=lambda *_: None,
    )
    board = result.leaderboard.set_index("candidate")
    assert board.loc["NPTS", "status"].startswith("skipped")
    assert board.loc[board.index.str.startswith("LightGBM")]["status"].str.startswith("skipped").all()
    assert result.best_candidate_name == "SeasonalNaive"


def test_given_a_trained_model_when_saved_and_loaded_then_it_predicts_identical_numbers(tmp_path, config):
    frame = make_frame(n_items=3, n_days=120, kind="covariate")
    history, context, _ = split_context(frame, config.horizon)
    lines = []
    result = train(
        history,
        config,
        tmp_path / "run",
        candidates=["SeasonalNaive", "DynamicRegression", "LightGBM"],
        candidate_params=FAST_LGB,
        log=lines.append,
    )
    # only the global model learns in fit (on 120 days its latest backtest fit is kept as the final
    # model, which must save and load like a refit); the local one fits per series at prediction
    assert not [line for line in lines if line.startswith("[engine] refit ")]
    assert any(line.startswith("[engine] LightGBM") and "keeps its latest backtest fit" in line for line in lines)
    assert any(line.startswith("[engine] DynamicRegression") and "nothing global to refit" in line for line in lines)
    meta = json.loads((result.model_dir / "metadata.json").read_text())
    assert meta["covariates"] == ["promotion"] and meta["static"] == ["category"]
    first = load_model(result.model_dir).predict(context)
    context.to_csv(tmp_path / "context.csv", index=False)
    load_model(result.model_dir).predict_file(tmp_path / "context.csv", tmp_path / "out.csv")
    second = pd.read_csv(tmp_path / "out.csv")
    assert list(second.columns) == ["item_id", "timestamp", "p10", "p50", "p90", "mean"]
    assert len(second) == 3 * config.horizon
    np.testing.assert_allclose(
        second[["p10", "p50", "p90", "mean"]].to_numpy(), first[["p10", "p50", "p90", "mean"]].to_numpy(), rtol=1e-12
    )
    assert (np.diff(second[["p10", "p50", "p90"]].to_numpy(), axis=1) >= 0).all()


def test_given_grouping_columns_when_predicted_then_output_keeps_them_and_the_user_column_names(tmp_path):
    config = EngineConfig(
        item_id_column="sku",
        timestamp_column="date",
        target_column="units",
        grouping_columns=("store",),
        frequency="D",
        horizon=5,
        quantiles=("p20", "p80"),
    )
    frame = make_frame(n_items=2, n_days=50).drop(columns=["promotion"])
    frame = frame.rename(columns={"item_id": "sku", "timestamp": "date", "target_value": "units"})
    frame = pd.concat([frame.assign(store="s1"), frame.assign(store="s2", units=frame["units"] * 2)])
    result = train(frame, config, tmp_path, candidates=["SeasonalNaive"], log=lambda *_: None)
    out = load_model(result.model_dir).predict(frame)  # no covariates: future dates are generated
    assert list(out.columns) == ["sku", "store", "date", "p20", "p80", "mean"]
    assert len(out) == 4 * 5
    assert out["date"].min() == "2023-02-20" and out["date"].max() == "2023-02-24"
    s2 = out[(out["sku"] == "item_0") & (out["store"] == "s2")]["mean"].to_numpy()
    s1 = out[(out["sku"] == "item_0") & (out["store"] == "s1")]["mean"].to_numpy()
    np.testing.assert_allclose(s2, 2 * s1, rtol=0.05)  # the grouping keeps the series apart


def test_given_missing_future_covariates_when_predicted_then_the_error_says_what_to_add(tmp_path, config):
    frame = make_frame(n_items=2, n_days=60, kind="covariate")
    result = train(frame, config, tmp_path, candidates=["SeasonalNaive"], log=lambda *_: None)
    with pytest.raises(ValueError, match=r"item 'item_0' has 0 future rows but the forecast horizon is 7.*promotion"):
        load_model(result.model_dir).predict(frame)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f.drop(columns=["target_value"]), r"missing column\(s\) \['target_value'\]"),
        (lambda f: f.assign(timestamp=f["timestamp"].where(f.index != 5, "not a date")), r"column 'timestamp' row 7"),
        (
            lambda f: f.assign(target_value=f["target_value"].astype(object).where(f.index != 3, "abc")),
            r"column 'target_value' row 5 is not a number",
        ),
        (
            lambda f: f.assign(target_value=f["target_value"].astype(float).where(f.index != 4, 1e308)),
            r"column 'target_value' has 1 values beyond \+-1e\+15 \(first: row 6, 1e\+308\)",
        ),
        (
            lambda f: f.assign(promotion=f["promotion"].astype(float).where(f.index != 8, 1e300)),
            r"column 'promotion' has 1 values beyond .*row 10",
        ),
    ],
)
def test_given_bad_training_data_when_trained_then_the_error_names_column_and_row(tmp_path, config, mutate, message):
    frame = mutate(make_frame(n_items=2, n_days=40))
    with pytest.raises(ValueError, match=message):
        train(frame, config, tmp_path, candidates=["SeasonalNaive"], log=lambda *_: None)


def test_given_too_short_history_when_trained_then_it_says_how_long_it_must_be(tmp_path, config):
    frame = make_frame(n_items=2, n_days=8)
    with pytest.raises(ValueError, match="training data too short for backtesting"):
        train(frame, config, tmp_path, candidates=["SeasonalNaive"], log=lambda *_: None)


def test_given_a_missing_model_dir_when_loaded_then_it_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model.joblib"):
        load_model(tmp_path)


def test_given_intervals_too_narrow_on_backtests_when_calibrated_then_they_are_widened():
    from forecasting.ensemble import apply_interval_scales, interval_scales

    rng = np.random.default_rng(1)
    actual = rng.normal(0, 1, (400, 25))
    z = 1.2816  # N(0,1) p90; the forecast claims half the true spread
    values = np.stack(
        [np.full_like(actual, -z / 2), np.zeros_like(actual), np.full_like(actual, z / 2), np.zeros_like(actual)],
        axis=-1,
    )
    factors = interval_scales(values, actual, (0.1, 0.5, 0.9), aim=1.0)
    assert factors.shape == (25, 3)  # per step, per quantile
    assert factors[:, 0] == pytest.approx(2.0, abs=0.15) and factors[:, 2] == pytest.approx(2.0, abs=0.15)
    widened = apply_interval_scales(values, factors, (0.1, 0.5, 0.9))
    inside = ((actual >= widened[..., 0]) & (actual <= widened[..., 2])).mean()
    assert 0.7 < inside < 0.9


def test_given_a_right_interval_when_calibrated_by_default_then_it_aims_wider_than_nominal_on_the_backtests():
    # backtests also chose the weights, so they flatter the ensemble: the default aims p10-p90 at
    # the p6-p94 pinball optimum (~88% there) for ~80% on later windows; aim=1 keeps it nominal
    from forecasting.ensemble import CALIBRATION_AIM, apply_interval_scales, interval_scales

    rng = np.random.default_rng(4)
    actual = rng.normal(0, 1, (600, 10))
    z = 1.2816  # exactly the N(0, 1) p10 and p90
    values = np.stack(
        [np.full_like(actual, -z), np.zeros_like(actual), np.full_like(actual, z), np.zeros_like(actual)], axis=-1
    )
    assert interval_scales(values, actual, (0.1, 0.5, 0.9), aim=1.0)[:, [0, 2]] == pytest.approx(1.0, abs=0.06)
    factors = interval_scales(values, actual, (0.1, 0.5, 0.9))
    expected = 1.5548 / z  # N(0, 1) p94 over p90, for the default aim of 1.1
    assert CALIBRATION_AIM == pytest.approx(1.1)
    assert factors[:, [0, 2]] == pytest.approx(expected, abs=0.07)
    calibrated = apply_interval_scales(values, factors, (0.1, 0.5, 0.9))
    inside = ((actual >= calibrated[..., 0]) & (actual <= calibrated[..., 2])).mean()
    assert 0.84 < inside < 0.92
    assert factors[:, 1] == pytest.approx(1.0)  # the median stays where it is


@pytest.mark.parametrize(
    "freq, pandas_freq, n",
    [  # the long sub-daily series take seconds: integration
        pytest.param("H", "h", 24 * 12, marks=pytest.mark.integration),
        ("W", "W-SUN", 120),
        ("M", "MS", 60),
        pytest.param("15min", "15min", 400, marks=pytest.mark.integration),
    ],
)
def test_given_other_frequencies_when_trained_and_predicted_then_the_next_periods_are_forecast(
    tmp_path, freq, pandas_freq, n
):
    config = EngineConfig(frequency=freq, horizon=4, holiday_country="US")
    stamps = pd.date_range("2020-01-05", periods=n, freq=pandas_freq)
    rng = np.random.default_rng(0)
    season = config.season_length
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "item_id": f"i{k}",
                    "timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"),
                    "target_value": 20 + k + 5 * np.sin(2 * np.pi * np.arange(n) / season) + rng.normal(0, 0.2, n),
                }
            )
            for k in range(3)
        ]
    )
    result = train(frame, config, tmp_path, candidate_params=FAST_LGB, log=lambda *_: None)
    out = load_model(result.model_dir).predict(frame)
    expected = pd.date_range(stamps[-1], periods=5, freq=pandas_freq)[1:]
    assert sorted(pd.to_datetime(out["timestamp"]).unique()) == list(expected)
    assert len(out) == 3 * 4 and np.isfinite(out[["p10", "p50", "p90", "mean"]].to_numpy()).all()


def test_given_a_target_that_never_goes_negative_when_forecast_then_no_quantile_or_mean_does(tmp_path, config):
    # intermittent demand near zero: the noisy candidates' lower quantiles would dip below zero
    frame = make_frame(n_items=3, n_days=90, noise=3.0).drop(columns=["promotion"])
    frame["target_value"] = (frame["target_value"] - 55).clip(lower=0)
    assert (frame["target_value"] == 0).mean() > 0.3
    history, context, _ = split_context(frame, config.horizon)
    result = train(
        history, config, tmp_path, candidates=["SeasonalNaive", "NPTS", "DynamicRegression"], log=lambda *_: None
    )
    forecast = load_model(result.model_dir).predict(context)
    assert json.loads((result.model_dir / "metadata.json").read_text())["non_negative"] is True
    assert (forecast[["p10", "p50", "p90", "mean"]].to_numpy() >= 0).all()
    assert (np.diff(forecast[["p10", "p50", "p90"]].to_numpy(), axis=1) >= 0).all()


def test_finalize_clips_at_zero_only_when_asked_and_keeps_quantiles_ordered():
    from forecasting.models.base import finalize

    values = np.array([[[-2.0, 1.0, -5.0, -1.0]]])  # p10, p50, p90 (crossing), mean
    assert finalize(values).tolist() == [[[-5.0, -2.0, 1.0, -1.0]]]
    assert finalize(values, non_negative=True).tolist() == [[[0.0, 0.0, 1.0, 0.0]]]


def test_given_ids_with_leading_zeros_in_files_when_trained_and_predicted_then_every_id_survives_as_text(
    tmp_path, config
):
    """'007' and '7' are two items: read from CSV files they must not merge into one item 7."""
    frame = make_frame(n_items=4, n_days=40).drop(columns=["promotion"])
    frame["item_id"] = frame["item_id"].map({"item_0": "007", "item_1": "7", "item_2": "0042", "item_3": "42"})
    frame.to_csv(tmp_path / "train.csv", index=False)
    result = train(
        tmp_path / "train.csv", config, tmp_path / "model", candidates=["SeasonalNaive"], log=lambda *_: None
    )
    frame.to_csv(tmp_path / "context.csv", index=False)
    out = pd.read_csv(
        load_model(result.model_dir).predict_file(tmp_path / "context.csv", tmp_path / "out.csv"),
        dtype={"item_id": str},
    )
    assert sorted(out["item_id"].unique()) == ["0042", "007", "42", "7"]
    assert len(out) == 4 * config.horizon


def test_given_context_timestamps_with_mixed_utc_offsets_when_predicted_then_they_are_read_at_local_time(
    tmp_path, config
):
    """PrepareData's rule in the engine too: 2023-01-02T00:00:00+02:00 is 2 January, not 1 January 22:00 UTC."""
    frame = make_frame(n_items=2, n_days=40).drop(columns=["promotion"])
    result = train(frame, config, tmp_path, candidates=["SeasonalNaive"], log=lambda *_: None)
    model = load_model(result.model_dir)
    offsets = np.where(np.arange(len(frame)) % 2 == 0, "T00:00:00Z", "T00:00:00+02:00")
    shifted = frame.assign(timestamp=frame["timestamp"] + offsets)
    pd.testing.assert_frame_equal(model.predict(shifted), model.predict(frame))


def _coherent(frame, quantiles=("p10", "p50", "p90")):
    q = frame[list(quantiles)].to_numpy()
    mean = frame["mean"].to_numpy()
    return (np.diff(q, axis=1) >= 0).all() and ((mean >= q[:, 0]) & (mean <= q[:, -1])).all()


def test_given_noisy_seasonal_series_with_a_covariate_when_served_then_every_row_is_one_coherent_distribution(
    tmp_path, config
):
    # known answer: level + weekly season + 30 x promotion, little noise (sd 0.3): the setting in
    # which LightGBM's separate mean booster left its quantile band (26% of rows, like the seed's 42%)
    frame = make_frame(n_items=6, n_days=160, kind="covariate", noise=0.3)
    t = np.tile(np.arange(160), 6)
    frame["target_value"] += 10 * np.sin(2 * np.pi * t / 7)
    history, context, actual = split_context(frame, config.horizon)
    result = train(
        history,
        config,
        tmp_path,
        candidates=["SeasonalNaive", "LightGBM"],
        candidate_params=FAST_LGB,
        log=lambda *_: None,
    )
    model = load_model(result.model_dir)
    batch = model.predict(context)  # batch transform and the endpoint call this
    context.to_csv(tmp_path / "context.csv", index=False)
    written = pd.read_csv(model.predict_file(tmp_path / "context.csv", tmp_path / "context.csv.out"))
    one = model.predict(context[context["item_id"] == "item_2"])  # a one-item endpoint request
    for served in (batch, written, one):
        assert _coherent(served)
    truth = actual.sort_values(["item_id", "timestamp"])["target_value"].to_numpy()
    assert np.mean(np.abs(batch["mean"].to_numpy() - truth)) < 6.0  # promotion lift 30, season 10


def test_given_lightgbm_when_it_forecasts_then_its_own_mean_lies_inside_its_quantiles_before_any_guard(config):
    from forecasting.models import create

    from .test_models import _panels

    frame = make_frame(n_items=6, n_days=160, kind="covariate", noise=0.3)  # 26% outside before the fix
    train_panel, hist, fut, _ = _panels(frame, config)
    model = create("LightGBM", config, **FAST_LGB["LightGBM"]).fit(train_panel)
    raw = np.asarray(model._predict(hist, fut))  # the model's output, not finalize's
    q = np.sort(raw[..., :-1], axis=2)
    assert ((raw[..., -1] >= q[..., 0]) & (raw[..., -1] <= q[..., -1])).all()


def test_given_errors_growing_with_the_step_when_calibrated_then_every_step_covers_80_percent():
    from forecasting.ensemble import apply_interval_scales, interval_scales

    # the true sigma grows from 1.8 at step 1 to 3 at step 14; the forecast claims sigma 2 throughout
    rng = np.random.default_rng(3)
    H, z = 14, 1.2816
    sigma = np.linspace(1.8, 3.0, H)
    actual = rng.normal(0, 1, (600, H)) * sigma
    claimed = np.full((600, H), 2.0 * z)
    values = np.stack([-claimed, np.zeros_like(actual), claimed, np.zeros_like(actual)], axis=-1)
    factors = interval_scales(values, actual, (0.1, 0.5, 0.9), aim=1.0)
    assert factors[0, 2] == pytest.approx(0.9, abs=0.1)  # 1.8/2
    assert factors[-1, 2] == pytest.approx(1.5, abs=0.12)  # 3/2
    calibrated = apply_interval_scales(values, factors, (0.1, 0.5, 0.9))
    inside = (actual >= calibrated[..., 0]) & (actual <= calibrated[..., 2])
    assert 0.74 < inside[:, :3].mean() < 0.86 and 0.74 < inside[:, -3:].mean() < 0.86  # near and far steps
    one_factor = apply_interval_scales(values, factors.mean(axis=0), (0.1, 0.5, 0.9))  # one factor for all steps
    inside_one = (actual >= one_factor[..., 0]) & (actual <= one_factor[..., 2])
    assert inside_one[:, -3:].mean() < 0.74 < 0.86 < inside_one[:, :3].mean()
    # predicting further than the backtests did keeps the last step's factor
    longer = np.concatenate([values, values[:, -1:]], axis=1)
    assert apply_interval_scales(longer, factors, (0.1, 0.5, 0.9))[:, -1, 2] == pytest.approx(calibrated[:, -1, 2])


def test_given_intervals_too_wide_on_backtests_when_calibrated_then_they_are_narrowed_to_cover_80_percent():
    from forecasting.ensemble import apply_interval_scales, interval_scales

    rng = np.random.default_rng(2)
    actual = rng.normal(0, 1, (400, 25))
    z = 1.2816  # the forecast claims 1.2 times the true spread
    values = np.stack(
        [np.full_like(actual, -1.2 * z), np.zeros_like(actual), np.full_like(actual, 1.2 * z), np.zeros_like(actual)],
        axis=-1,
    )
    factors = interval_scales(values, actual, (0.1, 0.5, 0.9), aim=1.0)
    assert factors[:, 0] == pytest.approx(1 / 1.2, abs=0.06) and factors[:, 2] == pytest.approx(1 / 1.2, abs=0.06)
    narrowed = apply_interval_scales(values, factors, (0.1, 0.5, 0.9))
    inside = ((actual >= narrowed[..., 0]) & (actual <= narrowed[..., 2])).mean()
    assert 0.75 < inside < 0.85
    # far too wide: narrowed by at most a fifth (a few backtest windows are thin evidence)
    assert interval_scales(values * 2, actual, (0.1, 0.5, 0.9), aim=1.0)[:, [0, 2]] == pytest.approx(0.8)
    # backtests of a few series (40 series-windows): too little evidence to narrow at all
    assert interval_scales(values[:40], actual[:40], (0.1, 0.5, 0.9), aim=1.0)[:, [0, 2]] == pytest.approx(1.0)


def test_given_gaussian_noise_when_trained_then_calibrated_backtest_coverage_of_p10_p90_is_near_80_percent(tmp_path):
    # weekly season plus N(0, 2) noise on 12 series: the right p10-p90 covers 80%
    config = EngineConfig(frequency="D", horizon=14, quantiles=("p10", "p50", "p90"), backtest_windows=3)
    frame = make_frame(n_items=12, n_days=240, kind="seasonal", noise=2.0).drop(columns=["promotion"])
    lines = []
    train(frame, config, tmp_path, candidates=["SeasonalNaive", "NPTS", "DynamicRegression"], log=lines.append)
    line = next(text for text in lines if "backtest coverage of p10-p90" in text)
    coverage = float(line.rsplit(" ", 1)[1])
    assert 0.72 <= coverage <= 0.88, line


def test_given_no_log_callable_when_training_then_progress_goes_to_the_logger_not_stdout(tmp_path, caplog, capsys):
    import logging

    config = EngineConfig(frequency="D", horizon=5)
    frame = make_frame(n_items=2, n_days=50).drop(columns=["promotion"])
    with caplog.at_level(logging.INFO, logger="forecasting.engine"):
        train(frame, config, tmp_path, candidates=["SeasonalNaive"])
    assert any(r.name == "forecasting.engine" and "[engine] best: " in r.getMessage() for r in caplog.records)
    assert capsys.readouterr().out == ""  # a library logs; only the CLIs print


def test_given_few_short_series_when_trained_then_more_windows_back_the_weights_and_the_held_out_coverage_is_near_80_percent(
    tmp_path,
):
    # 6 series, weekly season plus N(0, 3) noise: 6 x 14 points a window is thin, so the engine
    # takes 5 windows; the forecast of the next 14 days (never seen in training) covers ~80%
    config = EngineConfig(frequency="D", horizon=14, quantiles=("p10", "p50", "p90"))
    frame = make_frame(n_items=6, n_days=200, kind="seasonal", noise=3.0, seed=4).drop(columns=["promotion"])
    history, context, actual = split_context(frame, 14)
    lines = []
    result = train(
        history, config, tmp_path, candidates=["SeasonalNaive", "NPTS", "DynamicRegression"], log=lines.append
    )
    assert any("window 5/5" in text for text in lines)
    assert json.loads((result.model_dir / "metadata.json").read_text())["backtest_windows"] == 5
    forecast = load_model(result.model_dir).predict(context).merge(actual, on=["item_id", "timestamp"])
    inside = (forecast["target_value"] >= forecast["p10"]) & (forecast["target_value"] <= forecast["p90"])
    assert 0.7 <= inside.mean() <= 0.9, inside.mean()
    factors = np.asarray(json.loads((result.model_dir / "metadata.json").read_text())["interval_factors"])
    # per horizon step and quantile: the factors, and (30 rows of 6 series: thin) the relative floor
    assert factors.shape == (2, 14, 3)
    assert (factors[0] >= 1.0).all()  # 6 series x 5 windows: too few to narrow on
    assert (factors[1][:, 0] <= 0).all() and (factors[1][:, 2] >= 0).all()


def test_given_a_candidate_costly_per_window_when_trained_then_short_panels_keep_the_configured_windows(
    tmp_path, monkeypatch
):
    from forecasting.engine import _prepare as prepare
    from forecasting.engine import backtest_windows

    config = EngineConfig(frequency="D", horizon=14, quantiles=("p10", "p50", "p90"))
    frame = make_frame(n_items=2, n_days=200, kind="seasonal").drop(columns=["promotion"])
    panel = prepare(frame, config, "test")[3]
    assert len(backtest_windows(panel, config, print)) == 5
    assert len(backtest_windows(panel, config, print, extra=False)) == 2
    lines = []
    # Theta refits per series and window: at a cost per series that makes 5 windows of 2 series
    # expensive, the panel keeps the configured 2
    monkeypatch.setitem(PER_SERIES_SECONDS, "Theta", 1.5)
    train(frame, config, tmp_path, candidates=["SeasonalNaive", "Theta"], log=lines.append)
    assert any("window 2/2" in text for text in lines) and not any("window 3/" in text for text in lines)


def test_given_a_costly_per_window_candidate_on_a_tiny_panel_when_windows_are_chosen_then_extra_ones_are_affordable():
    from forecasting.engine import extra_windows_affordable

    config = EngineConfig(frequency="W", horizon=13)
    assert extra_windows_affordable(["SeasonalNaive", "LightGBM"], 10_000, config)  # cheap by class
    assert extra_windows_affordable(["SeasonalNaive", "Theta"], 1, config)  # ~0.3 s of refits in all
    assert not extra_windows_affordable(["SeasonalNaive", "Theta"], 100, config)
    assert not extra_windows_affordable(["SeasonalNaive", "ETS"], 20, config)  # 20 series x 5 windows x 0.12 s
    assert not extra_windows_affordable(["SeasonalNaive", "DeepAR"], 1, config)  # its fixed fit
    # priced on the windows the panel would get: Theta on 20 weekly series, 4 windows (~5 s), takes
    # them; on 60 series even 3 windows would cost 11 s
    assert extra_windows_affordable(["SeasonalNaive", "Theta"], 20, config, windows=4)
    assert not extra_windows_affordable(["SeasonalNaive", "Theta"], 60, config, windows=3)


def test_given_weekly_data_when_the_default_preset_trains_then_theta_joins_and_other_choices_are_kept():
    from forecasting.models import default_members

    weekly = default_members(EngineConfig(frequency="W", horizon=13))
    assert "Theta" in weekly and weekly[0] == "SeasonalNaive"
    assert "Theta" not in default_members(EngineConfig(frequency="D", horizon=14))
    assert "Theta" not in default_members(EngineConfig(frequency="M", horizon=12))
    # an explicit choice (algorithms or another preset) is the user's, untouched
    assert default_members(EngineConfig(frequency="W", horizon=13, algorithms=("ets",))) == ["SeasonalNaive", "ETS"]
    assert default_members(EngineConfig(frequency="W", horizon=13, preset="statistical")).count("Theta") == 1


def test_given_a_panel_too_large_for_a_candidate_when_trained_then_it_is_left_out_before_fitting(
    tmp_path, config, monkeypatch
):
    # given a budget so small that ETS's per-series cost for 3 series x 2 windows is far past it
    import dataclasses

    from forecasting.models import ETS

    config = dataclasses.replace(config, statistical_budget_seconds=0.001)
    fitted = []
    monkeypatch.setattr(ETS, "_fit", lambda self, train: fitted.append(train.n_series))
    lines = []
    result = train(
        make_frame(n_items=3, n_days=120), config, tmp_path, candidates=["SeasonalNaive", "ETS"], log=lines.append
    )
    # then ETS never fits, the log and the leaderboard say why, and the baseline carries the job
    assert fitted == []
    board = result.leaderboard.set_index("candidate")
    assert board.loc["ETS", "status"].startswith("skipped: ETS: projected")
    assert "left out for this panel size" in board.loc["ETS", "status"]
    assert any("left out for this panel size" in line for line in lines)
    assert result.best_candidate_name == "SeasonalNaive"


def test_given_whole_futures_when_split_then_the_array_path_equals_the_per_series_path(tmp_path, config):
    # given a trained model and a context where every item carries its H future rows
    frame = make_frame(n_items=4, n_days=90, kind="covariate")
    history, context, _ = split_context(frame, config.horizon)
    result = train(history, config, tmp_path / "run", candidates=["SeasonalNaive", "NPTS"], log=lambda *_: None)
    model = load_model(result.model_dir)
    from forecasting.data import ColumnRoles, static_frame, to_long_frame

    long = to_long_frame(context, model.config, model.roles, "context", training=False)
    ids = static_frame(context, model.config, ColumnRoles([], list(model.roles.static), []))
    # when split with arrays (all series at once) and per series (the path for short futures)
    fast, slow = model._split(long, ids, "context"), model._split_per_series(long, ids, "context")
    # then both give the same panels, and a forecast row per item and future period
    for a, b in zip(fast, slow):
        assert list(a.uids) == list(b.uids)
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.ds, b.ds)
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.X, b.X)
    out = model.predict(context)
    assert len(out) == 4 * config.horizon
    assert out.groupby("item_id")["timestamp"].min().nunique() == 1
    # and an empty future covariate is still named
    broken = context.copy()
    broken.loc[broken["target_value"].isna() & (broken["item_id"] == "item_2"), "promotion"] = np.nan
    with pytest.raises(ValueError, match="item 'item_2' has empty future values of covariate 'promotion'"):
        model.predict(broken)


def test_given_a_small_daily_panel_when_trained_then_the_seasonal_lightgbm_is_left_out_and_says_so(tmp_path, config):
    lines = []
    frame = make_frame(n_items=2, n_days=60)
    result = train(frame, config, tmp_path, candidates=["SeasonalNaive", "LightGBMSeasonal"], log=lines.append)
    assert not result.leaderboard["candidate"].str.startswith("LightGBM").any()
    assert "[engine] left out (nothing to add on this data): LightGBMSeasonal" in lines


class _Shifted(LocalModel):
    """A costly per-series candidate: the series' straight line moved by `offset` (params), the
    series it saw counted (on make_frame's trend series the line is all but exact)."""

    name = "Shifted"
    relative_cost = 5
    per_series_statistical = True
    seen: list = []

    @classmethod
    def default_params(cls, config):
        return {"offset": 0.0}

    def _predict_one(self, series, state):
        type(self).seen.append(series.uid)
        t = np.arange(len(series.y))
        slope, intercept = np.polyfit(t, series.y, 1)
        mean = intercept + slope * np.arange(len(t), len(t) + series.h) + self.params["offset"]
        spread = np.array([-0.6, 0.0, 0.6, 0.0])  # p10, p50, p90, mean
        return mean[:, None] + spread[None, :]


def _train_shifted(tmp_path, config, monkeypatch, offset, n_items=3):
    monkeypatch.setitem(CANDIDATES, "Shifted", _Shifted)
    monkeypatch.setattr(_Shifted, "seen", [])
    frame = make_frame(n_items=n_items, n_days=60, kind="trend")
    params = {"Shifted": {"offset": offset}}
    lines = []
    result = train(
        frame,
        config,
        tmp_path,
        candidates=["SeasonalNaive", "NPTS", "Shifted"],
        candidate_params=params,
        log=lines.append,
    )
    return result, result.leaderboard.set_index("candidate"), lines


def test_given_a_costly_member_under_the_prune_weight_when_trained_then_it_is_pruned_and_the_weights_refitted(
    tmp_path, config, monkeypatch
):
    monkeypatch.setattr(engine, "PRUNE_BELOW_WEIGHT", 1.01)  # any weight: pruned
    monkeypatch.setattr(engine, "SCREEN_MIN_SERIES", 3)  # pruning and carry-over: panels of 3+ here
    monkeypatch.setattr(_Shifted, "per_series_statistical", False)  # costly but not screened: pruned after
    result, board, lines = _train_shifted(tmp_path, config, monkeypatch, offset=0.0)
    status = board.loc["Shifted", "status"]
    assert re.fullmatch(
        r"ok; pruned from the ensemble \(weight 0\.\d{3} < 1\.01\), weights re-fitted without it", status
    )
    assert board.loc["Shifted", "ensemble_weight"] == 0 and np.isfinite(board.loc["Shifted", "wQL"])
    model = load_model(result.model_dir)
    assert "Shifted" not in model.candidates
    assert sum(np.asarray(w) for w in model.weights.values()) == pytest.approx(np.ones(4))


def test_given_a_costly_member_with_weight_when_trained_then_it_is_kept(tmp_path, config, monkeypatch):
    result, board, _ = _train_shifted(tmp_path, config, monkeypatch, offset=0.0)
    assert board.loc["Shifted", "status"] == "ok" and board.loc["Shifted", "ensemble_weight"] > 0.5
    assert "Shifted" in load_model(result.model_dir).candidates


def test_given_a_large_panel_and_a_useless_per_series_candidate_when_trained_then_a_sample_screens_it_out(
    tmp_path, config, monkeypatch
):
    monkeypatch.setattr(engine, "SCREEN_MIN_SERIES", 6)
    monkeypatch.setattr(engine, "SCREEN_SERIES", 2)
    result, board, lines = _train_shifted(tmp_path, config, monkeypatch, offset=-500.0, n_items=8)  # noqa
    status = board.loc["Shifted", "status"]
    assert status.startswith("screened out: weight 0.000 < 0.15 in the ensemble on a 2-series sample (wQL there ")
    assert set(_Shifted.seen) == {"item_0", "item_7"}  # two windows x the sample only, never the rest
    assert len(_Shifted.seen) == 4
    assert board.loc["Shifted", "ensemble_weight"] == 0 and "Shifted" not in load_model(result.model_dir).candidates


def test_given_a_large_panel_and_a_useful_per_series_candidate_when_screened_then_its_full_backtests_run(
    tmp_path, config, monkeypatch
):
    monkeypatch.setattr(engine, "SCREEN_MIN_SERIES", 6)
    monkeypatch.setattr(engine, "SCREEN_SERIES", 2)
    result, board, _ = _train_shifted(tmp_path, config, monkeypatch, offset=0.0, n_items=8)
    assert board.loc["Shifted", "status"] == "ok" and board.loc["Shifted", "ensemble_weight"] > 0.5
    # the sample (2 series x 2 windows), then every series in both windows, then the saved model's forecast
    assert len(_Shifted.seen) == 4 + 16


def test_given_a_small_panel_when_trained_then_nothing_is_screened_or_pruned(tmp_path, config, monkeypatch):
    monkeypatch.setattr(engine, "PRUNE_BELOW_WEIGHT", 1.01)
    result, board, _ = _train_shifted(tmp_path, config, monkeypatch, offset=0.0, n_items=3)
    assert board.loc["Shifted", "status"] == "ok" and board.loc["Shifted", "ensemble_weight"] > 0


def test_given_two_backtest_windows_when_ets_trains_then_its_form_search_runs_once_per_series(
    tmp_path, config, monkeypatch
):
    """The forms chosen before the oldest window serve the later one (its data only: no leak)."""
    from forecasting.models.statistical import ETS

    searched = []
    real = ETS._fit_one

    def counting(self, series):
        searched.append((series.uid, len(series.y), series.length))
        return real(self, series)

    monkeypatch.setattr(ETS, "_fit_one", counting)
    monkeypatch.setattr(engine, "SCREEN_MIN_SERIES", 3)
    frame = make_frame(n_items=3, n_days=60)
    result = train(frame, config, tmp_path, candidates=["SeasonalNaive", "ETS"], log=lambda *_: None)
    board = result.leaderboard.set_index("candidate")
    assert board.loc["ETS", "status"].startswith("ok") and np.isfinite(board.loc["ETS", "wQL"])
    assert sorted(uid for uid, _, _ in searched) == ["item_0", "item_1", "item_2"]
    windows = load_model(result.model_dir).metadata["backtest_windows"]
    assert windows >= 2
    assert {length for _, _, length in searched} == {60 - windows * 7}  # the oldest window's history


def test_given_a_useful_candidate_whose_sample_projects_past_its_budget_when_screened_then_it_is_skipped_unrun(
    tmp_path, config, monkeypatch
):
    import time as time_module

    monkeypatch.setattr(engine, "SCREEN_MIN_SERIES", 6)
    monkeypatch.setattr(engine, "SCREEN_SERIES", 2)
    real = _Shifted._predict_one

    def slow(self, series, state):
        time_module.sleep(0.05)  # 0.05 s a series: the full backtests would take ~0.8 s
        return real(self, series, state)

    monkeypatch.setattr(_Shifted, "_predict_one", slow)
    monkeypatch.setattr(config, "statistical_budget_seconds", 0.5)
    result, board, _ = _train_shifted(tmp_path, config, monkeypatch, offset=0.0, n_items=8)
    status = board.loc["Shifted", "status"]
    assert re.match(r"skipped: projected ~\d+s of backtests from a 2-series sample \(wQL there ", status), status
    assert len(_Shifted.seen) == 4  # the sample only


def test_the_logged_leaderboard_pads_no_column_to_the_longest_status():
    from forecasting.engine import leaderboard_text

    reason = "screened out: weight 0.050 < 0.15 in the ensemble on a 25-series sample (wQL there 0.0082); not run"
    board = pd.DataFrame(
        {
            "candidate": ["WeightedEnsemble", "ETS", "DeepAR"],
            "wQL": [0.00291, np.nan, 0.0067],
            "ensemble_weight": [np.nan, 0.0, 0.1],
            "status": ["ok", reason, "ok; pruned from the ensemble (weight 0.100 < 0.15), weights re-fitted"],
        }
    )
    lines = leaderboard_text(board).split("\n")
    assert [line.split()[-1] for line in lines] == ["status", "ok", "out", "ensemble"]
    assert lines[2].endswith("0.0000  screened out") and lines[3].endswith("ok; pruned from the ensemble")
    assert max(len(line) for line in lines) < 80 and all(line == line.rstrip() for line in lines)
    assert "0.0029 " in lines[1]
