"""ETS (AutoETS per series): the context it is fitted on."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting import EngineConfig
from forecasting.models import create

from .test_models import _panels


def _weekly(n_items=10, n_days=420, seed=3) -> pd.DataFrame:
    """A weekly season (amplitude 8) under noise 4 on a flat level, over more than a year of days."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_days)
    dates = pd.date_range("2022-01-01", periods=n_days, freq="D").strftime("%Y-%m-%d")
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "item_id": f"item_{i}",
                    "timestamp": dates,
                    "target_value": 40.0 + i + 8 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 4, n_days),
                }
            )
            for i in range(n_items)
        ],
        ignore_index=True,
    )


def _refit(y, spec, window):
    from statsforecast.models import AutoETS

    model = AutoETS(season_length=7, model=spec[:3], damped=spec[3] == "D")
    return model.forecast(y=y[-window:], h=7)["mean"]


def test_given_daily_history_when_ets_forecasts_then_it_refits_its_chosen_form_on_the_last_year():
    """On 150 days (~21 weekly cycles) the engine's ETS lost to plain AutoETS on the whole history
    (pizzaplace member alone 0.2992 against 0.2886 on 365 points); other frequencies keep 150."""
    config = EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"))
    train, hist, fut, _ = _panels(_weekly(), config)
    model = create("ETS", config, n_jobs=1).fit(train)
    values = model.predict(hist, fut)
    y = hist.y.reshape(hist.n_series, -1)
    specs = [model.specs[u][0] for u in hist.uids]
    year = np.array([_refit(s, spec, 365) for s, spec in zip(y, specs)])
    short = np.array([_refit(s, spec, 150) for s, spec in zip(y, specs)])
    assert np.max(np.abs(year - short)) > 0.05  # the two windows give different forecasts here
    np.testing.assert_allclose(values[:, :, 3], year, rtol=1e-6, atol=1e-6)
    # monthly data keeps the statistical members' 150 points (12 years)
    assert create("ETS", EngineConfig(frequency="M", horizon=6)).params["window"] == 150
