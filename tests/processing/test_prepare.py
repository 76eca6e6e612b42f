"""The PrepareData script end to end on small local files, and every bad input the issue lists."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from processing.prepare import main

REPO = Path(__file__).resolve().parents[2]


def sales_csv(items=("a", "b"), days=60, start="2023-01-01") -> str:
    """A small valid dataset: item_id,timestamp,target_value,promotion,region."""
    lines = ["item_id,timestamp,target_value,promotion,region"]
    for n, item in enumerate(items):
        for d, day in enumerate(pd.date_range(start, periods=days, freq="D").strftime("%Y-%m-%d")):
            lines.append(f"{item},{day},{(d % 7) * 2 + n + 1}.5,{int(d % 10 == 0)},R{n}")
    return "\n".join(lines) + "\n"


def with_line(text: str, line_number: int, replacement: str) -> str:
    """Replace line N (1-based, header = 1)."""
    lines = text.splitlines()
    lines[line_number - 1] = replacement
    return "\n".join(lines) + "\n"


def run_prepare(tmp_path, files, *args, capsys=None):
    """Write the input files, run the script in-process; returns (exit code, stdout, stderr, output dir)."""
    source = tmp_path / "input"
    source.mkdir()
    for name, content in files.items():
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    target = source / next(iter(files)) if len(files) == 1 else source
    out = tmp_path / "out"
    code = main(["--input", str(target), "--output-dir", str(out), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, out


def written(out: Path) -> list:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []


def with_offsets(text: str, offsets=("+02:00", "Z"), time="T00:00:00") -> str:
    """Timestamps with UTC offsets alternating row by row (an export that mixes zones)."""
    lines = text.splitlines()
    for i in range(1, len(lines)):
        parts = lines[i].split(",")
        parts[1] += time + offsets[i % len(offsets)]
        lines[i] = ",".join(parts)
    return "\n".join(lines) + "\n"


def hourly_csv(hours=40) -> str:
    stamps = pd.date_range("2023-01-01", periods=hours, freq="h").strftime("%Y-%m-%dT%H:%M:%S")
    return "item_id,timestamp,target_value\n" + "".join(f"a,{t},{i % 5}\n" for i, t in enumerate(stamps))


GOOD = sales_csv()
_TRUNCATED = gzip.compress((GOOD * 40).encode())
B_LINE = 62  # the first 'b' row: header (1) + 60 'a' rows

BAD_INPUTS = [
    # (case, files, extra args, fragments the message must contain)
    ("empty file", {"sales.csv": ""}, [], ["sales.csv: the file is empty", "Fix:"]),
    ("header only", {"sales.csv": "item_id,timestamp,target_value\n"}, [], ["sales.csv", "no data rows"]),
    (
        "missing column",
        {"sales.csv": GOOD.replace("timestamp", "time_stamp", 1)},
        [],
        [
            "required column 'timestamp' (TimestampColumn) (did you mean 'time_stamp'?) is missing",
            "Fix: pass --param TimestampColumn=time_stamp.",
        ],
    ),
    (
        "missing columns all at once",
        {"sales.csv": GOOD.replace("timestamp", "time_stamp", 1).replace("target_value", "units", 1)},
        ["--grouping-columns", "store"],
        [
            "required columns 'timestamp' (TimestampColumn) (did you mean 'time_stamp'?), 'target_value' (TargetColumn), "
            "'store' (GroupingColumns) are missing",
            "Fix: pass --param TimestampColumn=time_stamp; pass --param TargetColumn=<column>",
            "pass --param TargetColumn=<column>",
            "pass --param GroupingColumns=<columns>",
        ],
    ),
    (
        "truncated gzip",
        {"sales.csv.gz": _TRUNCATED[: len(_TRUNCATED) // 2]},
        [],
        ["sales.csv.gz: cannot be read as CSV", "cut short"],
    ),
    (
        "mixed UTC offsets at hourly frequency",
        {"sales.csv": with_offsets(hourly_csv(), time="")},
        ["--frequency", "H", "--horizon", "2"],
        [
            "column 'timestamp' (TimestampColumn): timestamps carry different UTC offsets (+00:00, +02:00)",
            "20 rows differ from the first row's (+00:00): sales.csv line 3 ('+02:00')",
            "one offset",
        ],
    ),
    (
        "huge target values",
        {"sales.csv": with_line(with_line(GOOD, 5, "a,2023-01-04,1e308,0,R0"), 9, "a,2023-01-08,-2e16,0,R0")},
        [],
        [
            "column 'target_value' (TargetColumn): 2 values are beyond +-1e+15",
            "sales.csv line 5 (1e+308)",
            "sales.csv line 9 (-2e+16)",
            "rescale",
        ],
    ),
    (
        "huge covariate values",
        {"sales.csv": with_line(GOOD, 6, "a,2023-01-05,3.5,1e300,R0")},
        [],
        ["column 'promotion' (covariate): 1 values are beyond", "sales.csv line 6 (1e+300)"],
    ),
    (
        "unparseable date",
        {"sales.csv": with_line(GOOD, 5, "a,2023-13-45,1.0,0,R0")},
        [],
        ["column 'timestamp'", "unparseable dates", "1 rows", "sales.csv line 5 ('2023-13-45')", "one format"],
    ),
    (
        "mixed date formats",
        {"sales.csv": with_line(with_line(GOOD, 6, "a,01/05/2023,1.0,0,R0"), 9, "a,01/08/2023,1.0,0,R0")},
        [],
        ["mixed date formats", "2 rows", "sales.csv line 6 ('01/05/2023')", "sales.csv line 9", "%Y-%m-%d"],
    ),
    (
        "text in target",
        {"sales.csv": with_line(GOOD, 4, "a,2023-01-03,12 units,0,R0")},
        [],
        [
            "column 'target_value' (TargetColumn)",
            "1 values are not numbers",
            "sales.csv line 4 ('12 units')",
            "plain number",
        ],
    ),
    (
        "NaN in target",
        {"sales.csv": with_line(with_line(GOOD, 4, "a,2023-01-03,NaN,0,R0"), 7, "a,2023-01-06,,0,R0")},
        [],
        ["2 rows have an empty or NaN target", "sales.csv line 4, sales.csv line 7", "Fix: remove those rows"],
    ),
    (
        "infinity in target",
        {"sales.csv": with_line(GOOD, 3, "a,2023-01-02,inf,0,R0")},
        [],
        ["1 values are infinite", "sales.csv line 3 (inf)"],
    ),
    (
        "duplicate rows rejected",
        {"sales.csv": GOOD + "a,2023-01-02,9.0,0,R0\n"},
        ["--duplicates", "reject"],
        ["1 duplicate rows", "sales.csv line 3 = sales.csv line 122", "--duplicates aggregate"],
    ),
    (
        "negative values rejected",
        {"sales.csv": with_line(GOOD, B_LINE, "b,2023-01-01,-3.0,0,R1")},
        ["--negative-targets", "reject"],
        ["1 negative values", f"sales.csv line {B_LINE} (-3.0)", "clip"],
    ),
    (
        "single-row items only",
        {"sales.csv": "item_id,timestamp,target_value\na,2023-01-01,1\nb,2023-01-02,2\n"},
        ["--horizon", "1"],
        [
            "ForecastHorizon 1 (--param ForecastHorizon=): the data spans 2 timesteps",
            "provide at least 4 periods of history (the data has 2)",
        ],
    ),
    (
        "every item a single row",
        {"sales.csv": "item_id,timestamp,target_value\na,2023-01-01,1\nb,2023-01-20,2\n"},
        ["--horizon", "1"],
        ["no item has enough history", "2 items", "a: a single row (2023-01-01)", "needs at least 5 periods"],
    ),
    (
        "semicolon delimiter",
        {"sales.csv": GOOD.replace(",", ";")},
        [],
        ["sales.csv", "separated by semicolons", "comma-separated"],
    ),
    (
        "folder with different schemas",
        {"part1.csv": GOOD, "part2.csv": GOOD.replace("promotion", "promo")},
        [],
        ["files have different columns", "part2.csv vs part1.csv", "missing ['promotion']", "extra ['promo']"],
    ),
    (
        "horizon over a quarter of history",
        {"sales.csv": GOOD},
        ["--horizon", "16"],
        [
            "ForecastHorizon 16 (--param ForecastHorizon=)",
            "60 timesteps",
            "at most a quarter of them",
            "lower it (--param ForecastHorizon=15 or less)",
        ],
    ),
    ("horizon over 500", {"sales.csv": GOOD}, ["--horizon", "501"], ["at most 500"]),
    (
        "empty item id",
        {"sales.csv": with_line(GOOD, 10, ",2023-01-09,1.0,0,R0")},
        [],
        ["column 'item_id'", "1 rows have an empty value", "sales.csv line 10"],
    ),
    ("bad filling json", {"sales.csv": GOOD}, ["--filling", "{middlefill"], ["--filling is not valid JSON"]),
    (
        "ragged row",
        {"sales.csv": with_line(GOOD, 7, "a,2023-01-06,1,234,0,R0")},
        [],
        ["sales.csv: cannot be parsed as CSV", "line 7", "quote fields that contain commas"],
    ),
    (
        "not utf-8",
        {"sales.csv": GOOD.replace("R0", "Rø").encode("latin-1")},
        [],
        ["sales.csv: not UTF-8 text", "save the file as UTF-8"],
    ),
    ("broken gzip", {"sales.csv.gz": b"not gzip at all"}, [], ["sales.csv.gz: cannot be read as CSV"]),
]


@pytest.mark.parametrize("case, files, args, fragments", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_fails_with_a_clear_message_and_writes_nothing(tmp_path, capsys, case, files, args, fragments):
    code, _, err, out = run_prepare(tmp_path, files, *args, capsys=capsys)
    assert code == 2, err
    assert err.startswith("PrepareData failed: ") and "Traceback" not in err
    assert err.count("\n") == 1, err  # one line
    for fragment in fragments:
        assert fragment in err, f"{case}: {fragment!r} not in {err!r}"
    # a pipeline user types --param Name=Value, not the step's own flags
    for flag in ("--horizon", "--frequency", "--input", "-column", "--grouping-columns"):
        assert flag not in err.replace("Column=", "").replace("Columns=", ""), f"{case}: {flag} in {err!r}"
    if "horizon" in case or "single" in case:
        assert err.count("ForecastHorizon=1 ") == 0  # no 'lower it to 1' for horizon 1
    assert written(out) == []


HANDLED = [
    # (case, files, args, warning fragment)
    ("byte-order mark", {"sales.csv": b"\xef\xbb\xbf" + GOOD.encode()}, [], "byte-order mark"),
    (
        "unsorted rows",
        {"sales.csv": GOOD.splitlines()[0] + "\n" + "\n".join(reversed(GOOD.splitlines()[1:])) + "\n"},
        [],
        "not sorted",
    ),
    (
        "all-zero item",
        {
            "sales.csv": GOOD
            + "".join(f"z,{d},0,0,R9\n" for d in pd.date_range("2023-01-01", periods=60).strftime("%Y-%m-%d"))
        },
        [],
        "only zero sales",
    ),
    ("mixed dataset with a single-row item", {"sales.csv": GOOD + "c,2023-01-05,3.0,0,R2\n"}, [], "dropped"),
    ("duplicates aggregated", {"sales.csv": GOOD + "a,2023-01-02,9.0,0,R0\n"}, [], "combined with aggregation 'sum'"),
    ("negative clipped", {"sales.csv": with_line(GOOD, B_LINE, "b,2023-01-01,-3.0,0,R1")}, [], "set to 0"),
    ("gzip input", {"sales.csv.gz": gzip.compress(GOOD.encode())}, [], None),
    (
        "mixed UTC offsets, daily",
        {"sales.csv": with_offsets(GOOD)},
        [],
        "each was read at its local time (offset dropped)",
    ),
]


@pytest.mark.parametrize("case, files, args, warning", HANDLED, ids=[c[0] for c in HANDLED])
def test_handled_inputs_warn_in_the_profile_and_produce_correct_output(tmp_path, capsys, case, files, args, warning):
    code, stdout, err, out = run_prepare(tmp_path, files, *args, capsys=capsys)
    assert code == 0, err
    profile = json.loads((out / "profile" / "profile.json").read_text())
    if warning:
        assert any(warning in w for w in profile["warnings"]), profile["warnings"]
        assert "warning: " in stdout
    train = pd.read_csv(out / "train" / "train.csv")
    expected = pd.read_csv(pd.io.common.StringIO(GOOD))
    a_train = train[train["item_id"] == "a"].reset_index(drop=True)
    assert a_train["timestamp"].is_monotonic_increasing and len(a_train) == 46
    if case == "duplicates aggregated":
        assert a_train.loc[1, "target_value"] == expected.loc[1, "target_value"] + 9.0
    else:
        assert a_train["target_value"].tolist() == expected["target_value"].iloc[:46].tolist()
    if case == "negative clipped":
        assert train.loc[train["item_id"] == "b", "target_value"].iloc[0] == 0.0
    if case == "all-zero item":
        assert (train.loc[train["item_id"] == "z", "target_value"] == 0).all() and profile["items"] == 3
    if case == "mixed dataset with a single-row item":
        assert profile["dropped_items"][0]["item_id"] == "c" and "single row" in profile["dropped_items"][0]["reason"]
        assert set(train["item_id"]) == {"a", "b"}


def test_end_to_end_outputs_follow_the_contract(tmp_path, capsys):
    code, _, err, out = run_prepare(
        tmp_path, {"sales.csv": GOOD}, "--grouping-columns=", "--horizon", "7", capsys=capsys
    )
    assert code == 0, err
    assert written(out) == [
        "backtest",
        "backtest/part-00000.csv",
        "holdout",
        "holdout/holdout.csv",
        "profile",
        "profile/profile.json",
        "train",
        "train/train.csv",
    ]
    train = pd.read_csv(out / "train" / "train.csv", dtype={"timestamp": str})
    holdout = pd.read_csv(out / "holdout" / "holdout.csv", dtype={"timestamp": str})
    backtest = pd.read_csv(out / "backtest" / "part-00000.csv", dtype={"timestamp": str})
    assert list(train.columns) == ["item_id", "timestamp", "target_value", "promotion", "region"]
    assert list(holdout.columns) == ["item_id", "timestamp", "target_value"]
    assert list(backtest.columns) == list(train.columns)
    assert len(train) == 2 * 53 and len(holdout) == 2 * 7 and len(backtest) == 2 * 60
    assert train["timestamp"].iloc[0] == "2023-01-01"  # midnight-only -> date format
    assert backtest["target_value"].isna().sum() == 14
    pd.testing.assert_frame_equal(backtest.dropna(subset=["target_value"]).reset_index(drop=True), train)
    profile = json.loads((out / "profile" / "profile.json").read_text())
    assert profile["columns"]["covariates"] == ["promotion"] and profile["columns"]["static"] == ["region"]
    assert (profile["items"], profile["periods"], profile["start"], profile["end"]) == (
        2,
        60,
        "2023-01-01",
        "2023-03-01",
    )
    assert profile["dropped_items"] == [] and profile["warnings"] == []


def test_rerun_replaces_previous_outputs_and_leaves_no_temp_folders(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    (out / "train" / "stale.csv").write_text("old")
    (out / "holdout").mkdir()  # empty folders, as a container creates them
    code, _, err, out = run_prepare(tmp_path, {"sales.csv": GOOD}, capsys=capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["backtest", "holdout", "profile", "train"]
    assert [p.name for p in (out / "train").iterdir()] == ["train.csv"]


def test_backtest_is_split_into_whole_series_files(tmp_path):
    from processing.data_prep import PrepConfig, prepare, read_input, write_outputs

    source = tmp_path / "sales.csv"
    source.write_text(sales_csv(items=("a", "b", "c")))
    probe = PrepConfig(horizon=7)
    whole = tmp_path / "whole"
    write_outputs(prepare(read_input(source, probe), probe), whole)
    one_series = len((whole / "backtest" / "part-00000.csv").read_bytes()) // 3
    # a budget that holds one series (plus header) but not two
    config = PrepConfig(horizon=7, backtest_max_bytes=int(one_series * 1.5))
    write_outputs(prepare(read_input(source, config), config), tmp_path / "out")
    parts = sorted((tmp_path / "out" / "backtest").glob("part-*.csv"))
    assert [p.name for p in parts] == ["part-00000.csv", "part-00001.csv", "part-00002.csv"]
    assert [pd.read_csv(p)["item_id"].unique().tolist() for p in parts] == [["a"], ["b"], ["c"]]
    assert all(p.stat().st_size <= config.backtest_max_bytes for p in parts)
    assert (
        b"".join(p.read_bytes().split(b"\n", 1)[1] for p in parts)
        == (whole / "backtest" / "part-00000.csv").read_bytes().split(b"\n", 1)[1]
    )


@pytest.mark.integration
def test_outputs_written_a_few_rows_at_a_time_are_the_same_bytes_as_in_one_go(tmp_path):
    # given five items and a backtest budget of about two series per file
    from processing.data_prep import PrepConfig, prepare, read_input, write_outputs

    source = tmp_path / "sales.csv"
    source.write_text(sales_csv(items=("a", "b", "c", "d", "e")))
    config = PrepConfig(horizon=7, backtest_max_bytes=2_500)
    write_outputs(prepare(read_input(source, config), config), tmp_path / "one_go", chunk_rows=10**9)
    # when the rows are formatted and written 70 at a time (chunks never split a series: 60 rows each)
    write_outputs(prepare(read_input(source, config), config), tmp_path / "chunked", chunk_rows=70)
    # then every file is byte for byte the same, the backtest files cut at the same series
    one_go = sorted(p.relative_to(tmp_path / "one_go") for p in (tmp_path / "one_go").rglob("*.*"))
    chunked = sorted(p.relative_to(tmp_path / "chunked") for p in (tmp_path / "chunked").rglob("*.*"))
    assert one_go == chunked and len([p for p in one_go if p.parts[0] == "backtest"]) > 1
    for relative in one_go:
        assert (tmp_path / "chunked" / relative).read_bytes() == (tmp_path / "one_go" / relative).read_bytes()


def test_chunks_end_at_series_boundaries():
    import numpy as np

    from processing.data_prep import _chunk_bounds

    series = np.repeat(np.arange(4), [3, 5, 2, 4])  # rows 0-2, 3-7, 8-9, 10-13
    assert _chunk_bounds(series, 4) == [(0, 8), (8, 14)]
    assert _chunk_bounds(series, 1) == [(0, 3), (3, 8), (8, 10), (10, 14)]
    assert _chunk_bounds(series, 100) == [(0, 14)]
    assert _chunk_bounds(series[:0], 4) == []


def test_script_runs_as_a_module_and_prints_no_traceback_on_bad_input(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id;timestamp;target_value\na;2023-01-01;1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "processing.prepare", "--input", str(bad), "--output-dir", str(tmp_path / "out")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("PrepareData failed: bad.csv: the header has a single column")
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_parquet_folder_with_future_rows_from_the_generator(tmp_path, capsys):
    # given the generator's output with 7 future rows per item, split over two Parquet files
    from processing.generate import generate_sales

    frame = generate_sales(products=5, regions=2, start="2023-01-01", end="2023-04-30", future_days=7)
    source = tmp_path / "input"
    source.mkdir()
    half = frame["item_id"].isin(sorted(frame["item_id"].unique())[:5])
    frame[half].to_parquet(source / "part1.parquet", index=False)
    frame[~half].to_parquet(source / "part2.parquet", index=False)
    # when prepared
    out = tmp_path / "out"
    assert main(["--input", str(source), "--output-dir", str(out), "--horizon", "7"]) == 0
    # then the future rows are recognised and left out, and the history is split as usual
    profile = json.loads((out / "profile" / "profile.json").read_text())
    assert any("70 rows after the last observed timestamp" in w for w in profile["warnings"])
    assert (profile["items"], profile["periods"], profile["end"]) == (10, 120, "2023-04-30")
    assert profile["columns"]["static"] == ["category", "product", "region"]
    assert profile["columns"]["covariates"] == ["promotion", "is_holiday", "day_of_week", "month", "quarter"]
    holdout = pd.read_csv(out / "holdout" / "holdout.csv")
    history = frame.dropna(subset=["target_value"])
    expected = history[history["timestamp"] >= "2023-04-24"].sort_values(["item_id", "timestamp"])
    assert holdout["target_value"].tolist() == expected["target_value"].tolist()


def test_weekly_frequency_sums_days_into_sunday_labelled_weeks(tmp_path, capsys):
    code, _, err, out = run_prepare(
        tmp_path,
        {"sales.csv": sales_csv(days=56, start="2023-01-02")},
        "--frequency",
        "W",
        "--horizon",
        "2",
        capsys=capsys,
    )
    assert code == 0, err
    train = pd.read_csv(out / "train" / "train.csv")
    assert train["timestamp"].iloc[:2].tolist() == ["2023-01-08", "2023-01-15"]
    daily = pd.read_csv(pd.io.common.StringIO(sales_csv(days=56, start="2023-01-02")))
    assert train["target_value"].iloc[0] == pytest.approx(daily["target_value"].iloc[:7].sum())
    assert len(train) == 2 * 6


def test_a_series_larger_than_the_backtest_budget_gets_its_own_file_and_a_warning(tmp_path):
    import json

    from processing.data_prep import PrepConfig, prepare, read_input, write_outputs

    source = tmp_path / "sales.csv"
    source.write_text(sales_csv(items=("a", "b")))
    config = PrepConfig(horizon=7, backtest_max_bytes=100)  # smaller than one series
    write_outputs(prepare(read_input(source, config), config), tmp_path / "out")
    parts = sorted((tmp_path / "out" / "backtest").glob("part-*.csv"))
    assert [pd.read_csv(p)["item_id"].unique().tolist() for p in parts] == [["a"], ["b"]]
    profile = json.loads((tmp_path / "out" / "profile" / "profile.json").read_text())
    assert "2 series are each larger than 100 bytes on their own" in " ".join(profile["warnings"])
