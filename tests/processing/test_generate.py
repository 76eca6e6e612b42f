"""The generator reproduces the seed recipe's script value for value, and its options behave."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from processing.generate import end_of_years, generate, generate_sales, main, us_holidays, write_frame

REPO = Path(__file__).resolve().parents[2]
SEED_DIR = REPO / ".." / "shared" / "seed"


def _recipe_script() -> str:
    """The python between `cat > generate_training_data.py << 'EOF'` and `EOF`, dedented."""
    docs = sorted(SEED_DIR.glob("*.md")) if SEED_DIR.is_dir() else []
    for doc in docs:
        match = re.search(
            r"cat > generate_training_data\.py << 'EOF'\n(.*?)\n[ \t]*EOF\n", doc.read_text(encoding="utf-8"), re.S
        )
        if match:
            return textwrap.dedent(match.group(1))
    pytest.skip(f"seed recipe with generate_training_data.py not found under {SEED_DIR.resolve()}")


def test_default_output_equals_the_recipe_script_value_for_value(tmp_path):
    # given the recipe's own script, run in a scratch folder
    (tmp_path / "generate_training_data.py").write_text(_recipe_script())
    subprocess.run(
        [sys.executable, "generate_training_data.py"], cwd=tmp_path, check=True, capture_output=True, timeout=120
    )
    expected = pd.read_csv(tmp_path / "ecommerce_sales_data.csv")
    # when our generator writes its default dataset
    ours_path = tmp_path / "ours.csv"
    assert main(["--out", str(ours_path)]) == 0
    ours = pd.read_csv(ours_path)
    # then every row and value is the same (and the bytes too)
    pd.testing.assert_frame_equal(ours, expected, check_exact=True)
    assert ours_path.read_bytes() == (tmp_path / "ecommerce_sales_data.csv").read_bytes()


def test_holiday_rule_matches_the_recipe_calendar_and_works_for_any_year():
    days = [d.strftime("%Y-%m-%d") for d in us_holidays([2021, 2022, 2023, 2024])]
    assert days[:12] == [
        "2021-01-01",
        "2021-07-04",
        "2021-11-25",
        "2021-12-25",
        "2022-01-01",
        "2022-07-04",
        "2022-11-24",
        "2022-12-25",
        "2023-01-01",
        "2023-07-04",
        "2023-11-23",
        "2023-12-25",
    ]
    assert days[14] == "2024-11-28"


def test_more_products_and_regions_get_generated_names_spread_over_categories():
    frame = generate_sales(products=12, regions=6, start="2022-01-01", end="2022-01-10")
    items = frame.drop_duplicates("item_id")
    assert len(items) == 12 * 6
    assert items.groupby("category")["product"].nunique().to_dict() == {
        "books": 2,
        "clothing": 3,
        "electronics": 3,
        "home": 2,
        "sports": 2,
    }
    assert "Region6" in set(items["region"])
    assert len(frame) == 72 * 10 and frame["target_value"].notna().all()


def test_future_days_keep_history_and_carry_known_covariates_with_empty_target():
    plain = generate_sales(start="2023-01-01", end="2023-12-31")
    data = generate(start="2023-01-01", end="2023-12-31", future_days=7)
    frame = data.frame
    future = frame[frame["target_value"].isna()]
    assert len(future) == 125 * 7
    assert set(future["timestamp"]) == {f"2024-01-0{d}" for d in range(1, 8)}
    assert (future.loc[future["timestamp"] == "2024-01-01", "is_holiday"] == 1).all()
    history = frame[frame["target_value"].notna()].reset_index(drop=True)
    pd.testing.assert_frame_equal(history, plain, check_exact=True)
    assert len(data.truth) == 125 * 7 and data.truth["target_value"].notna().all()
    assert (data.truth["target_value"] >= 0).all()
    # each item's future rows follow its history
    last = frame.groupby("item_id")["timestamp"].last()
    assert (last == "2024-01-07").all()


def test_cli_writes_parquet_and_truth(tmp_path):
    out, truth = tmp_path / "sales.parquet", tmp_path / "truth.csv"
    code = main(
        [
            "--out",
            str(out),
            "--products",
            "5",
            "--regions",
            "1",
            "--start",
            "2022-01-01",
            "--end",
            "2022-03-31",
            "--future-days",
            "3",
            "--future-truth",
            str(truth),
        ]
    )
    assert code == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 5 * (90 + 3)
    assert len(pd.read_csv(truth)) == 15
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sales.parquet", "truth.csv"]


def test_legacy_normal_draws_are_the_same_one_by_one_or_as_a_vector():
    # the vectorised generator relies on this property of numpy's legacy RandomState
    import numpy as np

    one, many = np.random.RandomState(42), np.random.RandomState(42)
    scalars = []
    for _ in range(3):
        scalars.append(one.uniform(20, 60))
        scalars += [one.normal(0, 5) for _ in range(7)]  # odd count: a cached Gaussian carries over
    vectors = []
    for _ in range(3):
        vectors.append(many.uniform(20, 60))
        vectors += many.normal(0, 5, 7).tolist()
    assert scalars == vectors


def test_written_in_chunks_the_files_equal_the_in_memory_dataset(tmp_path):
    # given the in-memory dataset with future rows
    data = generate(products=7, regions=2, start="2023-01-01", end="2023-02-28", future_days=5)
    for suffix in (".csv", ".csv.gz", ".parquet"):
        out, history, truth = (tmp_path / f"{name}{suffix}" for name in ("batch", "history", "truth"))
        # when the CLI writes it three items at a time (14 items: chunks of 3, 3, 3, 3, 2)
        assert (
            main(
                [
                    "--out",
                    str(out),
                    "--history-out",
                    str(history),
                    "--future-truth",
                    str(truth),
                    "--products",
                    "7",
                    "--regions",
                    "2",
                    "--start",
                    "2023-01-01",
                    "--end",
                    "2023-02-28",
                    "--future-days",
                    "5",
                    "--chunk-items",
                    "3",
                ]
            )
            == 0
        )
        read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
        # then each file holds exactly the in-memory rows: all, history only, the truth
        expected = data.frame
        pd.testing.assert_frame_equal(
            read(out),
            expected if suffix == ".parquet" else pd.read_csv(io.StringIO(expected.to_csv(index=False))),
            check_exact=True,
        )
        assert len(read(history)) == 14 * 59 and read(history)["target_value"].notna().all()
        assert read(history)["timestamp"].astype(str).max() == "2023-02-28"
        assert len(read(truth)) == 14 * 5
    # and the plain CSV is byte for byte what the one-shot writer produces
    one_shot = tmp_path / "one_shot.csv"
    write_frame(data.frame, one_shot)
    assert (tmp_path / "batch.csv").read_bytes() == one_shot.read_bytes()


def test_years_give_whole_years_from_start_and_conflict_with_end(tmp_path, capsys):
    assert end_of_years("2021-01-01", 3) == "2023-12-31"
    assert end_of_years("2020-03-01", 1) == "2021-02-28"
    out = tmp_path / "sales.csv"
    assert main(["--out", str(out), "--products", "1", "--regions", "1", "--years", "2"]) == 0
    frame = pd.read_csv(out)
    assert (frame["timestamp"].min(), frame["timestamp"].max(), len(frame)) == ("2021-01-01", "2022-12-31", 730)
    assert main(["--out", str(out), "--years", "2", "--end", "2022-12-31"]) == 2
    assert "--end or --years" in capsys.readouterr().err
    assert main(["--out", str(out), "--history-out", str(tmp_path / "h.csv")]) == 2
    assert "--history-out needs --future-days" in capsys.readouterr().err


def _with_truth(data) -> pd.DataFrame:
    """The generated rows with the future rows' true targets filled in."""
    frame = data.frame.copy()
    if data.truth is not None:
        truth = data.truth.set_index(["item_id", "timestamp"])["target_value"]
        keys = pd.MultiIndex.from_frame(frame[["item_id", "timestamp"]])
        frame["target_value"] = frame["target_value"].fillna(pd.Series(truth.reindex(keys).to_numpy()))
    return frame


@pytest.mark.parametrize(
    "start, first_end, later_end",
    [
        ("2023-06-01", "2023-12-20", "2024-02-10"),  # across the end of the recipe's span
        ("2023-06-01", "2023-09-30", "2023-11-15"),  # inside it
        ("2024-03-01", "2024-05-31", "2024-09-30"),  # after it
    ],
)
def test_a_later_end_continues_an_earlier_generation_exactly(start, first_end, later_end):
    # given a batch input generated now (history + 14 future days) and one generated weeks later
    earlier = generate(products=6, regions=2, start=start, end=first_end, future_days=14)
    later = generate(products=6, regions=2, start=start, end=later_end, future_days=14)
    # then every day they share is the same row: the earlier future's truth is the later history
    a, b = _with_truth(earlier), _with_truth(later)
    b = b[b["timestamp"] <= a["timestamp"].max()].reset_index(drop=True)
    assert len(b) == len(a) == 12 * len(pd.date_range(start, first_end)) + 12 * 14
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_the_date_range_line_names_the_future_days(tmp_path, capsys):
    out = tmp_path / "batch.csv"
    args = ["--out", str(out), "--products", "1", "--regions", "1", "--end", "2021-01-31"]
    assert main(args + ["--future-days", "3"]) == 0
    assert "Date range: 2021-01-01 to 2021-01-31 (history); future 2021-02-01 to 2021-02-03 (3 days" in (
        capsys.readouterr().out
    )
    assert main(args) == 0
    assert "Date range: 2021-01-01 to 2021-01-31 (history)\n" in capsys.readouterr().out


def test_a_start_or_end_that_is_not_a_date_is_one_line_naming_the_flag(tmp_path, capsys):
    out = tmp_path / "sales.csv"
    for flag, value in (("--start", "xx"), ("--end", "2023-13-01")):
        assert main(["--out", str(out), "--products", "1", "--regions", "1", flag, value]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"error: {flag} {value}: not a date; write it YYYY-MM-DD (for example 2021-01-01)"
    assert not out.exists()
    assert main(["--out", str(out), "--products", "1", "--regions", "1", "--end", "2021-03-31"]) == 0
    assert out.exists()


def test_a_negative_future_days_is_refused_naming_the_flag_and_writes_nothing(tmp_path, capsys):
    """--future-days -3 wrote 0 future rows and exited 0, as if it had been asked for none."""
    out = tmp_path / "batch.csv"
    assert main(["--out", str(out), "--products", "5", "--regions", "1", "--future-days", "-3"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --future-days -3: must be 0 or more (future days per item, empty target)"
    )
    assert not out.exists()
