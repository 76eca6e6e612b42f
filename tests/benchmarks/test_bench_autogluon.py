"""bench_autogluon's own logic: the exported windows are bench_real's, the ratio table, the missing-interpreter error.

AutoGluon itself is not installed here; the worker is exercised by the benchmark run (docs/engine.md).
"""

import numpy as np
import pandas as pd
import pytest

from benchmarks import bench_autogluon as bag
from benchmarks import bench_real


def _dataset(items=3, days=40, horizon=5) -> bench_real.Dataset:
    stamps = pd.date_range("2024-01-01", periods=days, freq="D")
    frame = pd.DataFrame(
        [
            {
                "item_id": f"item{i}",
                "timestamp": t,
                "target_value": float(100 * i + n),
                "promo": float((n + i) % 3 == 0),
                "category": "odd" if i % 2 else "even",
            }
            for i in range(items)
            for n, t in enumerate(stamps)
        ]
    )
    return bench_real.Dataset("toy", "D", horizon, frame.sample(frac=1, random_state=0))  # shuffled rows


def test_windows_are_the_last_horizons_and_history_ends_at_the_cutoff():
    data = _dataset()
    frame = bench_real.prepare(data)
    cutoffs = bench_real.last_cutoffs(frame, data.horizon, 2)
    assert cutoffs == [pd.Timestamp("2024-01-30"), pd.Timestamp("2024-02-04")]
    first, last = bench_real.windows(frame, data.horizon, cutoffs)
    assert first.history["timestamp"].max() == pd.Timestamp("2024-01-30")
    assert last.items == ["item0", "item1", "item2"]
    # item i's value on day n is 100 i + n: the last window is days 35..39
    np.testing.assert_array_equal(last.actual[2], [235.0, 236.0, 237.0, 238.0, 239.0])
    future = last.context[last.context["target_value"].isna()]
    assert len(future) == 3 * data.horizon and future["timestamp"].min() == pd.Timestamp("2024-02-05")


def test_export_round_trip_gives_the_worker_the_same_window(tmp_path):
    data = _dataset()
    frame = bench_real.prepare(data)
    (window,) = bench_real.windows(frame, data.horizon, bench_real.last_cutoffs(frame, data.horizon, 1))
    bag.export_window(window, data.frequency, data.horizon, tmp_path, seed=7)
    spec, history, future, static = bag.read_export(tmp_path)

    assert spec["prediction_length"] == 5 and spec["freq"] == "D" and spec["seed"] == 7
    assert spec["known_covariates"] == ["promo"] and spec["static"] == ["category"]
    assert spec["preset"] == "medium_quality" and {"Chronos2", "Toto2"} <= set(spec["excluded_model_types"])
    expected = window.history[["item_id", "timestamp", "target_value", "promo"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(history, expected)
    assert future["promo"].notna().all()
    assert "target_value" not in future  # the worker never sees the window's actuals
    assert len(future) == 3 * 5 and future["timestamp"].min() > window.cutoff
    assert static.set_index("item_id")["category"].to_dict() == {"item0": "even", "item1": "odd", "item2": "even"}


def test_a_text_column_that_varies_within_an_item_is_refused():
    frame = bench_real.prepare(_dataset())
    frame.loc[frame.index[:3], "category"] = "changed"
    with pytest.raises(ValueError, match="'category'.*constant per item"):
        bag.split_columns(frame)


def test_forecast_array_orders_items_and_refuses_missing_rows():
    rows = pd.DataFrame(
        {
            "item_id": ["b", "b", "a", "a"],
            "timestamp": pd.to_datetime(["2024-01-02", "2024-01-01"] * 2),
            "p10": [4.0, 3.0, 2.0, 1.0],
            "p50": 0.0,
            "p90": 0.0,
            "mean": 0.0,
        }
    )
    array = bag.forecast_array(rows, ["a", "b"], 2)
    np.testing.assert_array_equal(array[..., 0], [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(RuntimeError, match="3 rows for 2 items x 2 steps"):
        bag.forecast_array(rows.iloc[:3], ["a", "b"], 2)


def test_summary_ratios_are_against_autogluon_on_the_same_dataset():
    def row(dataset, window, method, wql, seconds):
        return dict(
            dataset=dataset,
            window=window,
            method=method,
            wQL=wql,
            MASE=1.0,
            coverage=0.8,
            fit_predict_s=seconds,
            cpu_s=seconds / 2,
        )

    rows = pd.DataFrame(
        [
            row("a", "w1", "engine", 0.040, 2.0),
            row("a", "w2", "engine", 0.050, 2.0),
            row("a", "w1", "AutoGluon", 0.050, 10.0),
            row("a", "w2", "AutoGluon", 0.050, 10.0),
            row("b", "w1", "engine", 0.030, 1.0),
            row("b", "w1", "AutoGluon", 0.020, 4.0),
        ]
    )
    table = bag.summarize(rows)
    assert table.loc[("a", "engine"), "wQL_vs_AG"] == pytest.approx(0.9)
    assert table.loc[("a", "engine"), "time_vs_AG"] == pytest.approx(0.2)
    assert table.loc[("b", "engine"), "wQL_vs_AG"] == pytest.approx(1.5)
    text = bag.markdown(table, "a").splitlines()
    heads = "| method | wQL | MASE | p10-p90 coverage | fit+predict s | CPU s | wQL / AG | time / AG | CPU / AG |"
    assert text[0] == heads
    assert "| engine | 0.0450 | 1.000 | 0.8000 | 4.0 | 2.0 | 0.90x | 0.20x | 0.20x |" in text
    assert "| AutoGluon | 0.0500 | 1.000 | 0.8000 | 20.0 | 10.0 | 1.00x | 1.00x | 1.00x |" in text
    rows.loc[rows["dataset"] == "b", "cpu_s"] = np.nan  # a run without CPU figures: "-", not "nanx"
    table = bag.summarize(rows)
    lines = bag.overview(table).splitlines()
    assert lines[0] == "| data | engine wQL | AutoGluon wQL | engine / AG: wQL | wall | CPU |"
    assert lines[2:] == [
        "| a | 0.0450 | 0.0500 | 0.90x | 0.20x | 0.20x |",
        "| b | 0.0300 | 0.0200 | 1.50x | 0.25x | - |",
    ]


def test_without_an_autogluon_interpreter_it_stops_with_one_clear_line(monkeypatch, capsys):
    monkeypatch.delenv(bag.AG_PYTHON_ENV, raising=False)
    with pytest.raises(SystemExit) as stop:
        bag.main(["--datasets", "seed"])
    assert stop.value.code == 2
    assert "--ag-python" in capsys.readouterr().err.strip().splitlines()[-1]
    with pytest.raises(SystemExit):
        bag.main(["--datasets", "seed", "--ag-python", "/nonexistent/python"])
    assert "/nonexistent/python: not an executable file" in capsys.readouterr().err


def test_cpu_seconds_count_a_running_child():
    """AutoGluon's pools are live children when fit returns: their CPU must count."""
    import subprocess
    import sys

    busy = "import time, sys\nwhile time.process_time() < 0.4: pass\nprint('busy', flush=True)\ntime.sleep(30)"
    before = bag.cpu_seconds()
    child = subprocess.Popen([sys.executable, "-c", busy], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "busy"
        assert bag.cpu_seconds() - before >= 0.3  # clock ticks of 10 ms
    finally:
        child.kill()
        child.wait()


def test_new_is_a_dataset_group_here_too(monkeypatch, capsys):
    monkeypatch.delenv(bag.AG_PYTHON_ENV, raising=False)
    with pytest.raises(SystemExit):
        bag.main(["--datasets", "new,seed"])  # known names: it gets as far as the missing interpreter
    assert "--ag-python" in capsys.readouterr().err.strip().splitlines()[-1]
    with pytest.raises(SystemExit):
        bag.main(["--datasets", "new,tourism"])
    assert "unknown ['tourism']" in capsys.readouterr().err


def test_counts_panels_load_as_daily_datasets_with_their_windows(monkeypatch, capsys):
    data, cutoffs = bag.load_dataset("counts-mixed")
    assert (data.frequency, data.horizon, cutoffs) == ("D", 14, None)
    assert data.frame["item_id"].nunique() == 40
    monkeypatch.delenv(bag.AG_PYTHON_ENV, raising=False)
    with pytest.raises(SystemExit):
        bag.main(["--datasets", "counts"])  # a known group: it gets as far as the missing interpreter
    assert "--ag-python" in capsys.readouterr().err.strip().splitlines()[-1]
