"""bench_counts: seeded integer panels, and a run that scores the count rule against the band it replaces."""

import numpy as np
import pytest

from benchmarks import bench_counts


@pytest.mark.parametrize("kind", bench_counts.KINDS)
def test_given_a_kind_and_seed_then_the_panel_is_whole_units_and_the_same_every_time(kind):
    a = bench_counts.count_panel(kind, seed=3, n_items=6, days=60)
    b = bench_counts.count_panel(kind, seed=3, n_items=6, days=60)
    assert a.equals(b) and a["item_id"].nunique() == 6
    y = a["target_value"].to_numpy()
    assert np.all(y >= 0) and np.all(y == np.round(y))
    if kind == "intermittent":
        assert (y == 0).mean() > 0.4


def test_given_an_unknown_kind_then_the_error_names_the_choices():
    with pytest.raises(ValueError, match="unknown kind 'smooth'; one of steady, intermittent, mixed"):
        bench_counts.count_panel("smooth", 0)


def test_given_a_steady_panel_when_run_then_the_engine_with_counts_and_without_are_both_scored():
    rows = bench_counts.run("steady", seed=0, n_items=8, days=150)
    by_method = {r["method"]: r for r in rows}
    assert set(by_method) == {"seasonal naive", "engine", "engine, continuous band"}
    assert all(r["count_band"] for r in rows)  # the backtests chose count quantiles on Poisson sales
    # the same fitted model, two bands: the forecasts differ, so the scores do
    assert by_method["engine"]["wQL"] != by_method["engine, continuous band"]["wQL"]
    assert all(np.isfinite(r["wQL"]) and 0 < r["coverage"] <= 1 for r in rows)
