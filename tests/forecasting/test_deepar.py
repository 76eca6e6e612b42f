"""DeepAR (torch): known answers on tiny synthetic series, reproducibility, artifacts, engine labels."""

from __future__ import annotations

import pickle
import time

import joblib
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from forecasting import load_model, train  # noqa: E402
from forecasting.models import TimeBudgetExceeded, create  # noqa: E402
from forecasting.models.deepar import DeepAR  # noqa: E402

from .conftest import make_frame, split_context  # noqa: E402
from .test_models import _panels  # noqa: E402

pytestmark = pytest.mark.integration  # every test trains the torch network

FAST = {"steps": 250, "num_samples": 100}


@pytest.fixture(scope="module")
def seasonal():
    from forecasting import EngineConfig

    config = EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"))
    frame = make_frame(n_items=4, n_days=140, kind="seasonal", noise=0.3)
    train_panel, hist, fut, truth = _panels(frame, config)
    model = create("DeepAR", config, **FAST).fit(train_panel)
    return config, model, train_panel, hist, fut, truth


def test_given_a_pure_weekly_season_when_forecast_then_deepar_follows_it(seasonal):
    _, model, _, hist, fut, truth = seasonal
    values = model.predict(hist, fut)
    assert values.shape == (4, 7, 4)
    mae = np.mean(np.abs(values[:, :, 1] - truth))  # p50
    assert mae < 2.5, f"DeepAR p50 error {mae:.2f} on a season of amplitude 10"
    flat = np.mean(np.abs(np.array([hist.series_y(i).mean() for i in range(4)])[:, None] - truth))
    assert mae < 0.4 * flat  # the season, not just the level


def test_given_noisy_series_when_forecast_then_quantiles_never_cross_and_form_an_interval(config):
    frame = make_frame(n_items=3, n_days=100, kind="seasonal", noise=8.0, seed=3)
    train_panel, hist, fut, _ = _panels(frame, config)
    values = create("DeepAR", config, steps=120, num_samples=100).fit(train_panel).predict(hist, fut)
    assert np.all(np.diff(values[:, :, :-1], axis=2) >= 0)
    assert np.all(values[:, :, 2] > values[:, :, 0])
    width = np.mean(values[:, :, 2] - values[:, :, 0])
    assert 5 < width < 60, f"p10-p90 width {width:.1f} for noise sd 8 (normal: 20.5)"


def test_given_a_promotion_effect_when_forecast_then_promoted_days_are_forecast_higher(config):
    frame = make_frame(n_items=4, n_days=200, kind="covariate", noise=0.5)
    train_panel, hist, fut, _ = _panels(frame, config)
    values = create("DeepAR", config, steps=300, num_samples=100).fit(train_panel).predict(hist, fut)
    promo = fut.X[:, 0].reshape(values.shape[:2]) == 1
    assert promo.any() and (~promo).any()
    lift = values[:, :, -1][promo].mean() - values[:, :, -1][~promo].mean()
    assert 15 < lift < 45, f"DeepAR learned a lift of {lift:.1f}, the truth is 30"


def test_given_the_same_data_when_fitted_twice_then_the_numbers_are_identical(seasonal):
    config, model, train_panel, hist, fut, _ = seasonal
    again = create("DeepAR", config, **FAST).fit(train_panel)
    first = model.predict(hist, fut)
    np.testing.assert_array_equal(first, again.predict(hist, fut))
    np.testing.assert_array_equal(first, model.predict(hist, fut))  # predicting twice: same samples


def test_given_a_fitted_model_when_pickled_and_loaded_then_it_predicts_identical_numbers(seasonal, tmp_path):
    _, model, _, hist, fut, _ = seasonal
    before = model.predict(hist, fut)
    joblib.dump(model, tmp_path / "m.joblib", compress=3)
    loaded = joblib.load(tmp_path / "m.joblib")
    # the weights travel as a state_dict (no module, no optimizer); the network is rebuilt on load
    assert "_net" not in model.__getstate__() and not hasattr(loaded, "optimizer")
    np.testing.assert_array_equal(loaded.predict(hist, fut), before)


def test_given_one_item_and_a_short_context_when_predicted_then_it_is_finite(seasonal):
    _, model, _, hist, fut, _ = seasonal
    one_h, one_f = hist.subset([2]), fut.subset([2])
    one = model.predict(one_h, one_f)
    assert one.shape == (1, 7, 4)
    # a series shorter than the context (and than the seasonal lags) is padded, not dropped
    short_h = hist.subset([2])
    short_h = short_h.take_rows(np.arange(short_h.indptr[1] - 10, short_h.indptr[1]), np.array([0, 10]))
    short = model.predict(short_h, one_f)
    assert np.isfinite(short).all() and abs(short[0, :, 1].mean() - one[0, :, 1].mean()) < 10


def test_given_an_unknown_static_category_when_predicted_then_it_uses_the_reserved_index(seasonal):
    _, model, _, hist, fut, _ = seasonal
    assert model.static_columns == ["category"]
    hist2, fut2 = hist.subset([0]), fut.subset([0])
    hist2.static = hist2.static.assign(category="never_seen")
    fut2.static = hist2.static
    assert model._static_codes(hist2.static)[0, 0] == 0
    assert np.isfinite(model.predict(hist2, fut2)).all()


def test_given_a_time_budget_in_the_past_when_fitted_then_it_raises(config):
    frame = make_frame(n_items=2, n_days=80)
    train_panel, _, _, _ = _panels(frame, config)
    with pytest.raises(TimeBudgetExceeded):
        create("DeepAR", config, steps=50).fit(train_panel, deadline=time.monotonic() - 1)


def test_given_the_deepar_algorithm_when_trained_then_the_leaderboard_names_the_torch_network(tmp_path, config):
    frame = make_frame(n_items=3, n_days=90, kind="covariate")
    history, context, _ = split_context(frame, config.horizon)
    config.algorithms = ("deepar",)
    result = train(
        history, config, tmp_path, candidate_params={"DeepAR": {"steps": 60, "num_samples": 50}}, log=lambda *_: None
    )
    board = result.leaderboard.set_index("candidate")
    assert "DeepAR (DeepAR-style RNN, torch)" in board.index
    assert board.loc["DeepAR (DeepAR-style RNN, torch)", "status"] == "ok"
    out = load_model(result.model_dir).predict(context)
    assert len(out) == 3 * config.horizon and np.isfinite(out[["p10", "p50", "p90", "mean"]].to_numpy()).all()


def test_given_torch_missing_when_deepar_is_requested_then_lightgbm_stands_in(tmp_path, config, monkeypatch):
    monkeypatch.setattr(DeepAR, "available", classmethod(lambda cls: False))
    frame = make_frame(n_items=2, n_days=60)
    config.algorithms = ("deepar",)
    result = train(
        frame,
        config,
        tmp_path,
        candidate_params={"LightGBM": {"num_boost_round": 10, "min_data_in_leaf": 5}},
        log=lambda *_: None,
    )
    labels = list(result.leaderboard["candidate"])
    assert "LightGBM (global, stands in for cnn-qr/deepar)" in labels
    assert not any(label.startswith("DeepAR") for label in labels)


@pytest.mark.parametrize(
    "frequency, horizon, periods, country", [("H", 24, 400, "US"), ("W", 4, 120, None), ("M", 3, 40, None)]
)
def test_given_other_frequencies_when_forecast_then_shapes_and_values_are_sane(frequency, horizon, periods, country):
    from forecasting import EngineConfig

    config = EngineConfig(
        frequency=frequency, horizon=horizon, quantiles=("p10", "p50", "p90"), holiday_country=country
    )
    frame = make_frame(n_items=2, n_days=periods, kind="seasonal", noise=1.0).drop(columns=["promotion"])
    frame["timestamp"] = np.tile(
        pd.date_range("2023-01-01", periods=periods, freq=config.pandas_frequency).strftime("%Y-%m-%d %H:%M:%S"), 2
    )
    train_panel, hist, fut, truth = _panels(frame, config)
    model = create("DeepAR", config, steps=30, num_samples=50).fit(train_panel)
    assert model.lags[:3] == [1, 2, 3] and model.C >= horizon
    values = model.predict(hist, fut)
    assert values.shape == (2, horizon, 4) and np.isfinite(values).all()
    assert np.all(np.abs(values[:, :, 1] - truth.mean()) < 60)  # the level of the series (50..60), not nonsense


def test_given_one_item_alone_or_in_a_batch_when_predicted_then_its_forecast_is_the_same(seasonal):
    _, model, _, hist, fut, _ = seasonal
    batch = model.predict(hist, fut)
    alone = model.predict(hist.subset([3]), fut.subset([3]))
    np.testing.assert_allclose(alone[0], batch[3], rtol=1e-4)  # per-series sampling streams


def test_given_concurrent_requests_when_predicted_then_each_gets_its_serial_numbers(seasonal):
    """The endpoint serves requests on threads (and a loaded model rebuilds its network lazily)."""
    from concurrent.futures import ThreadPoolExecutor

    _, model, _, hist, fut, _ = seasonal
    expected = [model.predict(hist.subset([i]), fut.subset([i]))[0] for i in range(4)]
    loaded = pickle.loads(pickle.dumps(model))  # no network yet: threads race to rebuild it
    with ThreadPoolExecutor(4) as pool:
        for candidate in (model, loaded):
            got = list(
                pool.map(
                    lambda i: candidate.predict(  # noqa: B023  (mapped within this iteration)
                        hist.subset([i]), fut.subset([i])
                    )[0],
                    range(4),
                )
            )
            for i in range(4):
                np.testing.assert_allclose(got[i], expected[i], rtol=1e-6)
