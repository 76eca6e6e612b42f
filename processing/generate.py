"""The seed recipe's synthetic e-commerce sales generator, vectorised.

With default arguments it reproduces the recipe's `generate_training_data.py` row for row and
value for value (tests/processing/test_generate.py runs the recipe's script and compares):
the same seeds and the same draw order (per item one ``np.random.uniform`` for the base demand,
then per day one ``random.random()`` for the promotion and one ``np.random.normal(0, 5)``).
Legacy ``RandomState`` draws are identical whether taken one by one or as a vector, and
Python's ``random.random()`` stream is drawn item-major exactly like the recipe's loops.

Those streams always cover the recipe's span, --start to RECIPE_END (2023-12-31), whatever
--end is; each later day is drawn from (seed, item id, date) alone (`day_draws`). So a day's
values are the same as history and as future, and a generation with a later --end (same seed,
start, products and regions) continues an earlier one exactly: the earlier --future-truth is
the later history, as real sales would be.

Standard library, numpy and pandas only: it also runs inside the processing container.

    python -m processing.generate --out ecommerce_sales_data.csv
    python -m processing.generate --products 500 --future-days 14 --future-truth truth.csv
    python -m processing.generate --products 5000 --years 3 --future-days 14 --out batch.csv \\
        --history-out history.csv         # 25,000 series, written in chunks of 1,000 items
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import hashlib
import os
import random
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from processing.atomic import staged_file
from processing.data_prep import csv_cell_texts, write_frame_csv
from processing.kernel import console
from processing.kernel.cli import step_main

# The recipe's catalogue, in the recipe's order (the order fixes the random draws).
CATEGORIES = {
    "electronics": ["laptop", "smartphone", "tablet", "headphones", "camera"],
    "clothing": ["shirt", "pants", "dress", "jacket", "shoes"],
    "home": ["furniture", "appliance", "bedding", "kitchen", "decor"],
    "sports": ["equipment", "apparel", "footwear", "accessories", "outdoor"],
    "books": ["fiction", "nonfiction", "textbook", "childrens", "technical"],
}
# category -> (base demand low, high, seasonality strength, trend strength per day)
CATEGORY_PARAMS = {
    "electronics": (80, 150, 0.4, 0.03),
    "clothing": (60, 120, 0.6, 0.01),
    "home": (40, 100, 0.3, 0.02),
    "sports": (30, 80, 0.5, 0.01),
    "books": (20, 60, 0.2, -0.01),
}
WEATHER_CATEGORIES = ("clothing", "sports")
REGIONS = ["North", "South", "East", "West", "Central"]
COLUMNS = [
    "timestamp",
    "target_value",
    "item_id",
    "category",
    "product",
    "region",
    "promotion",
    "is_holiday",
    "day_of_week",
    "month",
    "quarter",
]
DEFAULT_START = "2021-01-01"
DEFAULT_END = "2023-12-31"
DEFAULT_OUT = "ecommerce_sales_data.csv"
PROMOTION_PROBABILITY = 0.05
RECIPE_END = DEFAULT_END  # the recipe's streams draw the days up to here; later days: day_draws(seed, item, day)
CHUNK_ITEMS = 1000  # items per written chunk: ~1.1M rows for 3 daily years


@dataclasses.dataclass
class GeneratedData:
    """The sales frame (history, plus future rows with an empty target) and the future truth."""

    frame: pd.DataFrame
    truth: Optional[pd.DataFrame]  # item_id, timestamp, target_value of the future rows


def us_holidays(years: Sequence[int]) -> List[datetime]:
    """The recipe's simplified calendar by rule: Jan 1, Jul 4, Thanksgiving, Dec 25 (list order)."""
    days = []
    for year in years:
        november_first = date(year, 11, 1)
        first_thursday = 1 + (3 - november_first.weekday()) % 7
        days += [
            datetime(year, 1, 1),
            datetime(year, 7, 4),
            datetime(year, 11, first_thursday + 21),
            datetime(year, 12, 25),
        ]
    return days


def catalogue(products: int = 25, regions: int = 5) -> pd.DataFrame:
    """Items in the recipe's loop order: category, product, region.

    Products are spread over the five categories (the first ones get one more when the
    count does not divide); beyond the five named products a category gets generated names.
    """
    if products < 1 or regions < 1:
        raise ValueError("--products and --regions must be at least 1")
    names = list(CATEGORIES)
    rows = []
    for c, category in enumerate(names):
        count = products // len(names) + (1 if c < products % len(names) else 0)
        named = CATEGORIES[category]
        product_names = named[:count] + [f"product{j + 1:03d}" for j in range(len(named), count)]
        region_names = REGIONS[:regions] + [f"Region{j + 1}" for j in range(len(REGIONS), regions)]
        for product in product_names:
            for region in region_names:
                rows.append((f"{category}_{product}_{region}", category, product, region))
    return pd.DataFrame(rows, columns=["item_id", "category", "product", "region"])


def _day_terms(n_days: int):
    """Per-day sine terms computed exactly as the recipe does (scalar np.sin, same operand order)."""
    annual = np.empty(n_days)
    quarterly = np.empty(n_days)
    weekly = np.empty(n_days)
    weather = np.empty(n_days)
    for i in range(n_days):  # per day, not per row: cheap, and bit-identical to the recipe
        annual[i] = np.sin(2 * np.pi * i / 365)
        quarterly[i] = 0.2 * np.sin(2 * np.pi * i / 90)
        weekly[i] = 0.3 * np.sin(2 * np.pi * i / 7)
        weather[i] = 0.2 * np.sin(2 * np.pi * i / 365 + np.pi / 2)
    return annual, quarterly, weekly, weather


def _holiday_boost(dates: pd.DatetimeIndex, holidays: Sequence[datetime]) -> np.ndarray:
    """The recipe's loop has no break: the LAST holiday (list order) within 7 days decides."""
    boost = np.zeros(len(dates))
    day_numbers = dates.values.astype("datetime64[D]").astype(np.int64)
    for holiday in holidays:
        distance = np.abs(day_numbers - np.datetime64(holiday, "D").astype(np.int64))
        boost = np.where(distance <= 2, 0.8, np.where(distance <= 7, 0.4, boost))
    return boost


def _demand(base, strength, trend, weather_on, i, annual, quarterly, weekly, weather, holiday, promo, noise):
    """The recipe's demand formula on (items x days) arrays, in the recipe's operand order."""
    seasonal = strength[:, None] * annual[None, i]
    multiplier = (
        1
        + seasonal
        + quarterly[None, i]
        + weekly[None, i]
        + trend[:, None] * i[None, :]
        + holiday[None, :]
        + np.where(promo == 1, 0.7, 0.0)
    )
    demand = base[:, None] * multiplier + noise
    demand = np.where(demand > 0, demand, 0.0)  # max(0, demand) before the weather
    weather_factor = np.where(weather_on[:, None], weather[None, i], 0.0)
    final = np.where(weather_on[:, None], demand * (1 + weather_factor), demand)
    return np.round(final, 2)  # round(np.float64, 2) in the recipe is numpy's rounding


@dataclasses.dataclass
class _Draws:
    """Every random draw and per-item parameter (small: items x days numbers), history then future days."""

    items: pd.DataFrame
    dates: pd.DatetimeIndex  # the history's days
    base: np.ndarray
    strength: np.ndarray
    trend: np.ndarray
    weather_on: np.ndarray
    promo: np.ndarray  # int8 (items x all days: history, then future)
    noise: np.ndarray  # (items x all days)
    future_dates: Optional[pd.DatetimeIndex] = None


def _uniform_draws(stream: random.Random, count: int) -> np.ndarray:
    """`count` draws of Python's random() in order, without a list of `count` Python floats."""
    return np.fromiter((stream.random() for _ in range(count)), dtype=float, count=count)


def recipe_days(start: str) -> int:
    """Days from `start` to RECIPE_END: the span drawn from the recipe's seeded streams, whatever --end is."""
    return max(0, (pd.Timestamp(RECIPE_END) - pd.Timestamp(start)).days + 1)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic): a counter in, 64 random bits out."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def day_draws(seed: int, item_ids: Sequence[str], days: pd.DatetimeIndex) -> Tuple[np.ndarray, np.ndarray]:
    """(promotion 0/1 int8, noise ~ N(0, 5)) per item and day after RECIPE_END, each drawn from
    (seed, item id, date) alone: counter-based (splitmix64 of a per-item key and the day number),
    so a later --end, more --future-days, other items or a chunk size never change a day's draw."""
    keys = np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{seed}\0{item}".encode(), digest_size=8).digest(), "little")
            for item in item_ids
        ],
        dtype=np.uint64,
    )
    day = days.values.astype("datetime64[D]").astype(np.int64).astype(np.uint64)

    def uniform(stream: int) -> np.ndarray:  # [0, 1) with 53 random bits, one independent stream each
        counter = _mix(day * np.uint64(3) + np.uint64(stream) + _GOLDEN)
        return (_mix(keys[:, None] ^ counter[None, :]) >> np.uint64(11)).astype(np.float64) * 2.0**-53

    promo = (uniform(0) < PROMOTION_PROBABILITY).astype(np.int8)
    radius = np.sqrt(-2.0 * np.log1p(-uniform(1)))  # Box-Muller: log(1 - u), u in [0, 1)
    noise = 5.0 * radius * np.cos(2.0 * np.pi * uniform(2))
    return promo, noise


def _draw(products: int, regions: int, start: str, end: str, seed: int, future_days: int) -> _Draws:
    """The draws of every day from `start` to `end` plus `future_days`.

    Days up to RECIPE_END come from the recipe's streams in the recipe's order, drawn for the whole
    span from `start` to RECIPE_END whatever `end` is (a shorter history takes its first days), so
    the defaults are the recipe's data and each item's base demand never depends on `end`; later
    days come from day_draws. Either way a day's draw is the same as history or as future, so a
    generation with a later --end (same seed and start) continues an earlier one exactly."""
    items = catalogue(products, regions)
    dates = pd.date_range(start=pd.Timestamp(start), end=pd.Timestamp(end), freq="D")
    if len(dates) == 0:
        raise ValueError(f"--start {start} is after --end {end}")
    n_items, n_days = len(items), len(dates)
    future_dates = (
        pd.date_range(dates[-1] + pd.Timedelta(days=1), periods=future_days, freq="D") if future_days > 0 else None
    )
    n_all = n_days + max(0, future_days)

    np_state = np.random.RandomState(seed)
    py_random = random.Random(seed)
    params = items["category"].map(CATEGORY_PARAMS)
    low = np.array([p[0] for p in params], dtype=float)
    high = np.array([p[1] for p in params], dtype=float)
    strength = np.array([p[2] for p in params])
    trend = np.array([p[3] for p in params])
    weather_on = items["category"].isin(WEATHER_CATEGORIES).to_numpy()

    window = recipe_days(start)
    kept = min(window, n_all)
    base = np.empty(n_items)
    noise = np.empty((n_items, n_all))
    promo = np.empty((n_items, n_all), dtype=np.int8)
    # Python's stream is separate from numpy's: promotion draws item-major, like the recipe's loops
    for k in range(n_items):  # per item (not per row): numpy's draw order is uniform, then the day noises
        promo[k, :kept] = _uniform_draws(py_random, window)[:kept] < PROMOTION_PROBABILITY
        base[k] = np_state.uniform(low[k], high[k])
        noise[k, :kept] = np_state.normal(0, 5, window)[:kept]
    if kept < n_all:
        every_day = dates if future_dates is None else dates.append(future_dates)
        promo[:, kept:], noise[:, kept:] = day_draws(seed, items["item_id"].tolist(), every_day[kept:])
    return _Draws(items, dates, base, strength, trend, weather_on, promo, noise, future_dates)


def _chunks(draws: _Draws, chunk_items: int) -> Iterator[Tuple[pd.DataFrame, Optional[pd.DataFrame]]]:
    """(sales rows, future truth rows) for consecutive runs of items in item_id order.

    Rows of one item stay together (history, then its future rows), so the concatenation of
    the chunks is the whole dataset in the recipe's order, and a writer never holds all of it.
    """
    items, dates = draws.items, draws.dates
    n_days = len(dates)
    future_days = 0 if draws.future_dates is None else len(draws.future_dates)
    every_day = dates if draws.future_dates is None else dates.append(draws.future_dates)
    annual, quarterly, weekly, weather = _day_terms(n_days + future_days)
    # a day's holiday boost looks 7 days each way: the recipe's span uses the recipe's years only (its
    # last days do not see the next New Year, as in the recipe), later days every year around them
    recipe_holidays = us_holidays(range(dates[0].year, pd.Timestamp(RECIPE_END).year + 1))
    holidays = us_holidays(range(dates[0].year, every_day[-1].year + 2))
    boost = np.where(
        every_day <= pd.Timestamp(RECIPE_END),
        _holiday_boost(every_day, recipe_holidays),
        _holiday_boost(every_day, holidays),
    )
    i = np.arange(n_days + future_days)
    order = np.argsort(items["item_id"].to_numpy().astype(str), kind="stable")  # the recipe sorts by item_id
    step = max(1, chunk_items)
    for begin in range(0, len(order), step):
        rows = order[begin : begin + step]
        part = items.iloc[rows]
        terms = (draws.base[rows], draws.strength[rows], draws.trend[rows], draws.weather_on[rows])
        target = _demand(*terms, i, annual, quarterly, weekly, weather, boost, draws.promo[rows], draws.noise[rows])
        truth = None
        if future_days:
            truth = pd.DataFrame(
                {
                    "item_id": np.repeat(part["item_id"].to_numpy(), future_days),
                    "timestamp": np.tile(np.asarray(draws.future_dates.strftime("%Y-%m-%d"), dtype=object), len(rows)),
                    "target_value": target[:, n_days:].reshape(-1),
                }
            )
            target[:, n_days:] = np.nan  # the batch input's future rows: known covariates, empty target
        yield _frame(part, every_day, target, draws.promo[rows], holidays), truth


def generate(
    products: int = 25,
    regions: int = 5,
    start: str = DEFAULT_START,
    end: str = DEFAULT_END,
    seed: int = 42,
    future_days: int = 0,
) -> GeneratedData:
    """Generate the sales history (and optional future rows plus their true targets) in memory."""
    draws = _draw(products, regions, start, end, seed, future_days)
    frame, truth = next(_chunks(draws, len(draws.items)))
    return GeneratedData(frame=frame, truth=truth)


def _frame(
    items: pd.DataFrame, dates: pd.DatetimeIndex, target: np.ndarray, promo: np.ndarray, holidays: Sequence[datetime]
) -> pd.DataFrame:
    """Rows in the recipe's column order, item by item (items given in item_id order), then by day."""
    n_items, n_days = len(items), len(dates)
    holiday_days = pd.DatetimeIndex(holidays)
    day_columns = {
        "is_holiday": dates.isin(holiday_days).astype(np.int64),
        "day_of_week": dates.dayofweek.to_numpy().astype(np.int64),
        "month": dates.month.to_numpy().astype(np.int64),
        "quarter": ((dates.month.to_numpy() - 1) // 3 + 1).astype(np.int64),
    }
    return pd.DataFrame(
        {
            "timestamp": np.tile(np.asarray(dates.strftime("%Y-%m-%d"), dtype=object), n_items),
            "target_value": target.reshape(-1),
            "item_id": np.repeat(items["item_id"].to_numpy(), n_days),
            "category": np.repeat(items["category"].to_numpy(), n_days),
            "product": np.repeat(items["product"].to_numpy(), n_days),
            "region": np.repeat(items["region"].to_numpy(), n_days),
            "promotion": promo.reshape(-1).astype(np.int64),
            **{name: np.tile(values, n_items) for name, values in day_columns.items()},
        },
        columns=COLUMNS,
    )


def generate_sales(
    products: int = 25,
    regions: int = 5,
    start: str = DEFAULT_START,
    end: str = DEFAULT_END,
    seed: int = 42,
    future_days: int = 0,
) -> pd.DataFrame:
    """The sales frame only (future rows, if any, have an empty target_value)."""
    return generate(products, regions, start, end, seed, future_days).frame


def _kind(path: Path) -> str:
    suffixes = "".join(path.suffixes[-2:]).lower()
    for kind, endings in (("parquet", (".parquet", ".pq")), ("csv.gz", (".csv.gz",)), ("csv", (".csv",))):
        if suffixes.endswith(endings):
            return kind
    raise ValueError(f"output {path}: use a .csv, .csv.gz or .parquet file name")


def write_frame(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write CSV (optionally .gz) or Parquet by extension, atomically (temp file + os.replace)."""
    path = Path(path)
    kind = _kind(path)
    with staged_file(path) as tmp:
        if kind == "parquet":
            frame.to_parquet(tmp, index=False)
        elif kind == "csv.gz":
            frame.to_csv(tmp, index=False, compression="gzip")
        else:
            write_frame_csv(frame, tmp)  # same text as DataFrame.to_csv, several times faster
    return path


class _ChunkWriter:
    """Appends frames of the same columns to one CSV / CSV.gz / Parquet file being staged."""

    def __init__(self, tmp: Path, kind: str):
        self.tmp, self.kind, self.handle, self.parquet = tmp, kind, None, None

    def append(self, frame: pd.DataFrame) -> None:
        if self.kind == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(
                frame, preserve_index=False, schema=self.parquet.schema if self.parquet else None
            )
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(self.tmp, table.schema)
            self.parquet.write_table(table)
            return
        if self.handle is None:
            opener = gzip.open if self.kind == "csv.gz" else open
            self.handle = opener(self.tmp, "wt", encoding="utf-8", newline="")
            self.handle.write(",".join(frame.columns) + "\n")
        cells = [csv_cell_texts(frame[c].to_numpy()).tolist() for c in frame.columns]
        if cells and len(cells[0]):
            self.handle.write("\n".join(map(",".join, zip(*cells))) + "\n")

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        if self.handle is not None:
            self.handle.close()


def write_generated(
    out: str | os.PathLike,
    products: int = 25,
    regions: int = 5,
    start: str = DEFAULT_START,
    end: str = DEFAULT_END,
    seed: int = 42,
    future_days: int = 0,
    history_out: Optional[str] = None,
    truth_out: Optional[str] = None,
    chunk_items: int = CHUNK_ITEMS,
) -> dict:
    """Generate and write chunk by chunk (memory: the draws plus one chunk, not the whole table).

    The files hold exactly what `generate` returns (history_out: the rows with a target only;
    truth_out: the future truth). Returns counts for the summary line."""
    draws = _draw(products, regions, start, end, seed, future_days)
    targets = [(Path(out), "frame")] + [
        (Path(p), what) for p, what in ((history_out, "history"), (truth_out, "truth")) if p
    ]
    counts = {
        "rows": 0,
        "future_rows": 0,
        "items": len(draws.items),
        "first": str(draws.dates[0].date()),
        "last": str(draws.dates[-1].date()),
        "future_first": str(draws.future_dates[0].date()) if draws.future_dates is not None else None,
        "future_last": str(draws.future_dates[-1].date()) if draws.future_dates is not None else None,
    }
    with contextlib.ExitStack() as stack:
        writers = {}
        for path, what in targets:
            writer = _ChunkWriter(stack.enter_context(staged_file(path)), _kind(path))
            stack.callback(writer.close)  # closed before its staged file is moved into place
            writers[what] = writer
        for frame, truth in _chunks(draws, chunk_items):
            writers["frame"].append(frame)
            future = frame["target_value"].isna().to_numpy()
            counts["rows"] += len(frame)
            counts["future_rows"] += int(future.sum())
            if "history" in writers:
                writers["history"].append(frame[~future])
            if "truth" in writers:
                writers["truth"].append(truth)
    return counts


def end_of_years(start: str, years: int) -> str:
    """The last day of `years` whole years from `start` (2021-01-01, 3 -> 2023-12-31)."""
    if years < 1:
        raise ValueError(f"--years must be at least 1, got {years}")
    return str((pd.Timestamp(start) + pd.DateOffset(years=years) - pd.Timedelta(days=1)).date())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m processing.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output .csv, .csv.gz or .parquet (default %(default)s)")
    parser.add_argument("--products", type=int, default=25, help="products, spread over 5 categories (default 25)")
    parser.add_argument("--regions", type=int, default=5, help="regions per product (default 5)")
    parser.add_argument("--start", default=DEFAULT_START, help="first day (default %(default)s)")
    parser.add_argument("--end", default=None, help=f"last day of history (default {DEFAULT_END})")
    parser.add_argument(
        "--years", type=int, default=None, help="history of N whole years from --start (instead of --end)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--future-days",
        type=int,
        default=0,
        help="append N future rows per item with known covariates and an empty target",
    )
    parser.add_argument("--future-truth", default=None, help="also write the true future targets here")
    parser.add_argument(
        "--history-out",
        default=None,
        help="also write the history alone (the rows with a target) here: a training input whose batch input is --out",
    )
    parser.add_argument(
        "--chunk-items",
        type=int,
        default=CHUNK_ITEMS,
        help="items generated and written at a time (memory; default %(default)s)",
    )
    return parser


@step_main("error", ValueError)
def main(argv: Optional[Sequence[str]] = None) -> int:
    console.setup()
    args = build_parser().parse_args(argv)
    for needs_future in ("future_truth", "history_out"):
        if getattr(args, needs_future) and args.future_days <= 0:
            print(f"error: --{needs_future.replace('_', '-')} needs --future-days N (N >= 1)", file=sys.stderr)
            return 2
    if args.years is not None and args.end is not None:
        print("error: give --end or --years, not both", file=sys.stderr)
        return 2
    for flag, value in (("--start", args.start), ("--end", args.end)):
        try:  # parsed as the generator parses it, so what it accepts still works
            _ = value is None or pd.Timestamp(value)
        except ValueError:
            print(f"error: {flag} {value}: not a date; write it YYYY-MM-DD (for example 2021-01-01)", file=sys.stderr)
            return 2
    if args.future_days < 0:
        print(
            f"error: --future-days {args.future_days}: must be 0 or more (future days per item, empty target)",
            file=sys.stderr,
        )
        return 2
    if args.chunk_items < 1:
        print(f"error: --chunk-items must be at least 1, got {args.chunk_items}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    end = end_of_years(args.start, args.years) if args.years is not None else (args.end or DEFAULT_END)
    counts = write_generated(
        args.out,
        args.products,
        args.regions,
        args.start,
        end,
        args.seed,
        args.future_days,
        args.history_out,
        args.future_truth,
        args.chunk_items,
    )
    print(
        f"Generated {counts['rows']} rows of sales data for {counts['items']} unique items "
        f"({counts['future_rows']} future rows) in {time.perf_counter() - started:.2f}s -> {args.out}"
    )
    future = (
        f"; future {counts['future_first']} to {counts['future_last']} ({args.future_days} days, empty target)"
        if counts["future_first"]
        else ""
    )
    print(f"Date range: {counts['first']} to {counts['last']} (history){future}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
