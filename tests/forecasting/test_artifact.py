"""The fitted model shared by the endpoint's threads: predictions keep no state on it."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from forecasting import load_model
from forecasting.artifact import ForecastModel
from forecasting.engine import _prepare
from forecasting.models import create

from .conftest import FAST_LGB, make_frame, split_context
from .test_models import _panels

FAST = ["SeasonalNaive", "NPTS", "DynamicRegression", "ETS", "Theta", "LightGBM"]
OPTIONAL = {"Prophet": "prophet", "DeepAR": "torch"}
EVERY = FAST + ["ARIMA"] + [n for n, module in OPTIONAL.items() if importlib.util.find_spec(module)]
PARAMS = {**FAST_LGB, "DeepAR": {"steps": 30, "num_samples": 50}}


def _fitted(names, config, history: pd.DataFrame, tmp_path):
    """The candidates fitted and weighted equally (so each one predicts), saved and loaded."""
    _, roles, static, panel = _prepare(history, config, "test")
    fitted = {
        n: create(
            n,
            config,
            **{"n_jobs": 1, **PARAMS.get(n, {})} if n in ("ETS", "Theta", "ARIMA", "Prophet") else PARAMS.get(n, {}),
        ).fit(panel)
        for n in names
    }
    weights = {n: np.full(len(config.quantiles) + 1, 1 / len(names)) for n in names}
    return load_model(ForecastModel(config, roles, static, fitted, weights).save(tmp_path / "model"))


@pytest.mark.parametrize("names", [FAST, pytest.param(EVERY, marks=pytest.mark.slow)], ids=["fast", "every"])
def test_given_one_loaded_model_when_threads_predict_at_once_then_each_gets_its_sequential_numbers(
    names, config, tmp_path
):
    # given: a model whose candidates all predict, and one context per item (as endpoint requests)
    frame = make_frame(n_items=4, n_days=100, kind="covariate", noise=2.0)
    history, context, _ = split_context(frame, config.horizon)
    model = _fitted(names, config, history, tmp_path)
    requests = [
        context[context["item_id"] == item].reset_index(drop=True) for item in sorted(context["item_id"].unique())
    ]
    requests.append(context)  # and one request with every item
    expected = [model.predict(r) for r in requests]
    # when: the same requests on 5 threads, twice over
    with ThreadPoolExecutor(5) as pool:
        rounds = [list(pool.map(model.predict, requests)) for _ in range(2)]
    # then
    for got in rounds:
        for frame_got, frame_expected in zip(got, expected):
            pd.testing.assert_frame_equal(frame_got, frame_expected)


def test_given_concurrent_predictions_when_some_series_fall_back_then_each_call_reports_its_own(config):
    # given: the first series too short for ETS (fewer than 8 points): it falls back; the others do not
    frame = make_frame(n_items=4, n_days=60, noise=2.0)
    frame = frame[~((frame["item_id"] == "item_0") & (frame.index < 50))].reset_index(drop=True)
    train, hist, fut, _ = _panels(frame, config)
    model = create("ETS", config, n_jobs=1).fit(train)
    calls = [[0], [1], [0, 1, 2], [2, 3]] * 3
    sequential = [model.forecast(hist.subset(c), fut.subset(c)) for c in calls]
    assert [f.fallbacks.count for f in sequential[:4]] == [1, 0, 1, 0]
    # when
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(lambda c: model.forecast(hist.subset(c), fut.subset(c)), calls))
    # then: every call's forecasts and fallback count are its own
    for got, want in zip(concurrent, sequential):
        np.testing.assert_array_equal(got.values, want.values)
        assert got.fallbacks == want.fallbacks
    assert not {"fallbacks", "fallback_reason", "predict_seconds", "_deadline"} & set(vars(model))


def test_given_a_deadline_when_predicting_then_a_passed_one_stops_it_and_a_far_one_changes_nothing(config, tmp_path):
    """The endpoint's per-request compute deadline: past it the prediction stops (it does not compute on)."""
    import time

    from forecasting.models.base import TimeBudgetExceeded

    frame = make_frame(n_items=3, n_days=60, noise=2.0)
    history, context, _ = split_context(frame, config.horizon)
    model = _fitted(["SeasonalNaive", "NPTS"], config, history, tmp_path)

    with pytest.raises(TimeBudgetExceeded, match="deadline"):
        model.predict(context, deadline=time.monotonic() - 1.0)
    pd.testing.assert_frame_equal(model.predict(context, deadline=time.monotonic() + 600), model.predict(context))


_LOAD_AND_PREDICT = """
import sys
from forecasting import load_model
load_model(sys.argv[1]).predict_file(sys.argv[2], sys.argv[3])
print(sorted(m for m in ("lightgbm", "sklearn", "scipy", "torch", "statsforecast", "prophet") if m in sys.modules))
"""


@pytest.mark.parametrize(
    "names, imported",
    [(["SeasonalNaive", "NPTS"], []), (["SeasonalNaive", "LightGBM"], ["lightgbm", "scipy"])],
    ids=["npts", "lightgbm"],
)
def test_given_an_artifact_when_a_fresh_process_loads_and_predicts_then_it_imports_only_its_members_libraries(
    names, imported, config, tmp_path
):
    # given: an artifact of those members, and a context file (as a transform request)
    import subprocess
    import sys
    from pathlib import Path

    frame = make_frame(n_items=3, n_days=80)
    history, context, _ = split_context(frame, config.horizon)
    model = _fitted(names, config, history, tmp_path)
    context.to_csv(tmp_path / "context.csv", index=False)
    expected = model.predict(context)
    # when: a new interpreter loads it and predicts (the batch transform's worker, the endpoint)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_AND_PREDICT,
            str(tmp_path / "model"),
            str(tmp_path / "context.csv"),
            str(tmp_path / "out.csv"),
        ],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
    )
    # then: the per-series models' artifact needed neither lightgbm nor scipy; the forecasts are the same
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == repr(imported)
    got = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(
        got[list(config.quantiles) + ["mean"]].to_numpy(), expected[list(config.quantiles) + ["mean"]].to_numpy()
    )


def test_given_an_artifact_without_metadata_when_loaded_then_lightgbm_is_imported_ahead(config, tmp_path):
    # given: a LightGBM member, and the metadata that names the members lost
    from forecasting.artifact import METADATA_FILE, needs_lightgbm

    history, _, _ = split_context(make_frame(n_items=2, n_days=60), config.horizon)
    model_dir = _fitted(["SeasonalNaive", "LightGBM"], config, history, tmp_path) and tmp_path / "model"
    assert needs_lightgbm(model_dir)
    (model_dir / METADATA_FILE).unlink()
    # when / then: the safe default (import ahead), and the artifact still loads
    assert needs_lightgbm(model_dir)
    assert set(load_model(model_dir).candidates) == {"SeasonalNaive", "LightGBM"}


def _request_text() -> str:
    """A request file with what the fast reader must read as the project's reader does: ids that
    look like numbers, an empty target (future rows), blanks and 'NA' in covariates, booleans, texts."""
    rows = ["item_id,timestamp,target_value,promotion,flag,price,category"]
    for item in ("007", "a b", "x"):
        for day in range(1, 6):
            target = "" if day > 3 else f"{day * 1.1:.17g}"
            promo = "NA" if (item, day) == ("x", 2) else ("" if day == 4 else str(day % 2))
            rows.append(
                f"{item},2024-01-0{day},{target},{promo},{'True' if day % 2 else 'False'},{day / 3:.17g},c_{item}"
            )
    return "\n".join(rows) + "\n"


def _fast_read(path, config):
    """The pyarrow path of the one fast reader itself (None: it steps aside for pandas)."""
    from processing import tables

    return tables._arrow_coded(path, [config.item_id_column], [config.target_column], threads=False)


@pytest.mark.parametrize("numbers", ["plain", "long decimals and exponents"])
def test_given_a_plain_request_csv_when_read_then_the_frame_is_the_projects_readers(numbers, config, tmp_path):
    # given: numbers pyarrow's parser rounds otherwise than pandas' (the old request reader's
    # pyarrow floats differed from the project reader's on such values)
    from forecasting.artifact import read_request
    from forecasting.data import read_table

    path = tmp_path / "part-00000.csv"
    text = _request_text()
    if numbers != "plain":
        text = text.replace(",1.1000000000000001,", ",9.4708096e-22,")
        text = text.replace(",0.33333333333333331,", ",-1.29613633692769452e+23,")
    path.write_text(text)
    # when
    fast, usual = read_request(path, config), read_table(path, config)
    # then: pyarrow read it (not the fallback), and the frame is the project reader's, bit for bit
    assert _fast_read(path, config) is not None
    pd.testing.assert_frame_equal(fast, usual, check_exact=True)
    assert fast["item_id"].astype(str).iloc[0] == "007"
    assert isinstance(fast["item_id"].dtype, pd.CategoricalDtype) and fast["target_value"].dtype == float
    if numbers != "plain":
        assert fast["target_value"].iloc[0] == pd.read_csv(path)["target_value"].iloc[0]  # pandas' rounding


@pytest.mark.parametrize("case", ["bom", "gzip", "text target", "quoted header"])
def test_given_a_request_file_that_is_not_plain_when_read_then_the_projects_reader_reads_or_explains(
    case, config, tmp_path
):
    # given
    import gzip

    from forecasting.artifact import read_request
    from forecasting.data import read_table

    text = _request_text()
    path = tmp_path / "part-00000.csv"
    if case == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    elif case == "gzip":
        path = tmp_path / "part-00000.csv.gz"
        path.write_bytes(gzip.compress(text.encode()))
    elif case == "text target":
        path.write_text(text.replace("2024-01-02,2.2000000000000002", "2024-01-02,lots", 1))
    else:
        path.write_text(text.replace("item_id,", '"item_id",', 1))
    # when / then: the pyarrow path reads what it reads alike (gzip, a quoted header) and steps
    # aside for the rest; the result (or the one-line error) is the usual one
    assert (_fast_read(path, config) is None) == (case in ("bom", "text target"))
    if case == "text target":
        with pytest.raises(ValueError, match="row 3 is not a number"):
            load_predict_source = read_request(path, config)
            from forecasting.data import ColumnRoles, to_long_frame

            to_long_frame(load_predict_source, config, ColumnRoles([], [], []), str(path), training=False)
        return
    pd.testing.assert_frame_equal(read_request(path, config), read_table(path, config), check_exact=True)


def test_given_a_request_file_when_predicted_then_the_output_is_byte_for_byte_the_project_readers(config, tmp_path):
    # given: a model of the fast members and a request file (history + future rows with covariates)
    from forecasting.data import read_table

    frame = make_frame(n_items=4, n_days=90, kind="covariate", noise=2.0)
    history, context, _ = split_context(frame, config.horizon)
    model = _fitted(["SeasonalNaive", "NPTS", "LightGBM"], config, history, tmp_path)
    context.to_csv(tmp_path / "part-00000.csv", index=False)
    # when: the transform's request path, and the same model on the project reader's frame
    model.predict_file(tmp_path / "part-00000.csv", tmp_path / "fast.out")
    model.predict(read_table(tmp_path / "part-00000.csv", config)).to_csv(tmp_path / "usual.out", index=False)
    # then
    assert (tmp_path / "fast.out").read_bytes() == (tmp_path / "usual.out").read_bytes()
