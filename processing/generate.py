"""The seed recipe's synthetic e-commerce sales generator, vectorised.

With default arguments it reproduces the recipe's `generate_training_data.py` row for row and
value for value (tests/processing/test_generate.py runs the recipe's script and compares):
the same seeds and the same draw order (per item one ``np.random.uniform`` for the base demand,
then per day one ``random.random()`` for the promotion and one ``np.random.normal(0, 5)``).
Legacy ``RandomState`` draws are identical whether taken one by one or as a vector, and
Python's ``random.random()`` stream is drawn item-major exactly like the recipe's loops.

Standard library, numpy and pandas only: it also runs inside the processing container.

    python -m processing.generate --out ecommerce_sales_data.csv
    python -m processing.generate --products 500 --future-days 14 --future-truth truth.csv
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import pandas as pd

from processing.atomic import staged_file
from processing.data_prep import write_frame_csv
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
COLUMNS = ["timestamp", "target_value", "item_id", "category", "product", "region",
           "promotion", "is_holiday", "day_of_week", "month", "quarter"]
DEFAULT_START = "2021-01-01"
DEFAULT_END = "2023-12-31"
DEFAULT_OUT = "ecommerce_sales_data.csv"
PROMOTION_PROBABILITY = 0.05
FUTURE_SEED_OFFSET = 1_000_003   # future promotions/noise come from their own seeded streams


@dataclasses.dataclass
class GeneratedData:
    """The sales frame (history, plus future rows with an empty target) and the future truth."""
    frame: pd.DataFrame
    truth: Optional[pd.DataFrame]   # item_id, timestamp, target_value of the future rows


def us_holidays(years: Sequence[int]) -> List[datetime]:
    """The recipe's simplified calendar by rule: Jan 1, Jul 4, Thanksgiving, Dec 25 (list order)."""
    days = []
    for year in years:
        november_first = date(year, 11, 1)
        first_thursday = 1 + (3 - november_first.weekday()) % 7
        days += [datetime(year, 1, 1), datetime(year, 7, 4),
                 datetime(year, 11, first_thursday + 21), datetime(year, 12, 25)]
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
    for i in range(n_days):   # per day, not per row: cheap, and bit-identical to the recipe
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


def _demand(base, strength, trend, weather_on, i, annual, quarterly, weekly, weather,
            holiday, promo, noise):
    """The recipe's demand formula on (items x days) arrays, in the recipe's operand order."""
    seasonal = strength[:, None] * annual[None, i]
    multiplier = (1 + seasonal + quarterly[None, i] + weekly[None, i] + trend[:, None] * i[None, :]
                  + holiday[None, :] + np.where(promo == 1, 0.7, 0.0))
    demand = base[:, None] * multiplier + noise
    demand = np.where(demand > 0, demand, 0.0)            # max(0, demand) before the weather
    weather_factor = np.where(weather_on[:, None], weather[None, i], 0.0)
    final = np.where(weather_on[:, None], demand * (1 + weather_factor), demand)
    return np.round(final, 2)   # round(np.float64, 2) in the recipe is numpy's rounding


def generate(products: int = 25, regions: int = 5, start: str = DEFAULT_START,
             end: str = DEFAULT_END, seed: int = 42, future_days: int = 0) -> GeneratedData:
    """Generate the sales history (and optional future rows plus their true targets)."""
    items = catalogue(products, regions)
    dates = pd.date_range(start=pd.Timestamp(start), end=pd.Timestamp(end), freq="D")
    if len(dates) == 0:
        raise ValueError(f"--start {start} is after --end {end}")
    n_items, n_days = len(items), len(dates)

    np_state = np.random.RandomState(seed)
    py_random = random.Random(seed)
    params = items["category"].map(CATEGORY_PARAMS)
    low = np.array([p[0] for p in params], dtype=float)
    high = np.array([p[1] for p in params], dtype=float)
    strength = np.array([p[2] for p in params])
    trend = np.array([p[3] for p in params])
    weather_on = items["category"].isin(WEATHER_CATEGORIES).to_numpy()

    base = np.empty(n_items)
    promo = np.empty((n_items, n_days), dtype=np.int64)
    noise = np.empty((n_items, n_days))
    rand = py_random.random
    # Python's stream is separate from numpy's: all promotion draws at once, item-major, like the loops
    draws = np.array([rand() for _ in range(n_items * n_days)]).reshape(n_items, n_days)
    promo[:] = draws < PROMOTION_PROBABILITY
    for k in range(n_items):   # per item (not per row): numpy's draw order is uniform, then the day noises
        base[k] = np_state.uniform(low[k], high[k])
        noise[k] = np_state.normal(0, 5, n_days)

    all_days = n_days + max(0, future_days)
    annual, quarterly, weekly, weather = _day_terms(all_days)
    hist_holidays = us_holidays(range(dates[0].year, dates[-1].year + 1))
    i = np.arange(n_days)
    target = _demand(base, strength, trend, weather_on, i, annual, quarterly, weekly, weather,
                     _holiday_boost(dates, hist_holidays), promo, noise)
    frame = _frame(items, dates, target, promo, hist_holidays)

    truth = None
    if future_days > 0:
        future_dates = pd.date_range(dates[-1] + pd.Timedelta(days=1), periods=future_days, freq="D")
        all_holidays = us_holidays(range(dates[0].year, future_dates[-1].year + 1))
        future_np = np.random.RandomState(seed + FUTURE_SEED_OFFSET)
        future_py = random.Random(seed + FUTURE_SEED_OFFSET)
        f_promo = (np.array([future_py.random() for _ in range(n_items * future_days)])
                   .reshape(n_items, future_days) < PROMOTION_PROBABILITY).astype(np.int64)
        f_noise = future_np.normal(0, 5, (n_items, future_days))
        fi = np.arange(n_days, all_days)
        f_target = _demand(base, strength, trend, weather_on, fi, annual, quarterly, weekly, weather,
                           _holiday_boost(future_dates, all_holidays), f_promo, f_noise)
        future = _frame(items, future_dates, np.full(f_target.shape, np.nan), f_promo, all_holidays)
        truth = _frame(items, future_dates, f_target, f_promo, all_holidays)[
            ["item_id", "timestamp", "target_value"]].reset_index(drop=True)
        frame = pd.concat([frame, future], ignore_index=True)
        frame = frame.sort_values(["item_id", "timestamp"], kind="stable").reset_index(drop=True)
    return GeneratedData(frame=frame, truth=truth)


def _frame(items: pd.DataFrame, dates: pd.DatetimeIndex, target: np.ndarray, promo: np.ndarray,
           holidays: Sequence[datetime]) -> pd.DataFrame:
    """Rows in the recipe's column order, sorted by item_id then timestamp like the recipe."""
    order = np.argsort(items["item_id"].to_numpy().astype(str), kind="stable")   # the recipe sorts by item_id
    items = items.iloc[order]
    target, promo = target[order], promo[order]
    n_items, n_days = len(items), len(dates)
    holiday_days = pd.DatetimeIndex(holidays)
    day_columns = {
        "is_holiday": dates.isin(holiday_days).astype(np.int64),
        "day_of_week": dates.dayofweek.to_numpy().astype(np.int64),
        "month": dates.month.to_numpy().astype(np.int64),
        "quarter": ((dates.month.to_numpy() - 1) // 3 + 1).astype(np.int64),
    }
    return pd.DataFrame({
        "timestamp": np.tile(np.asarray(dates.strftime("%Y-%m-%d"), dtype=object), n_items),
        "target_value": target.reshape(-1),
        "item_id": np.repeat(items["item_id"].to_numpy(), n_days),
        "category": np.repeat(items["category"].to_numpy(), n_days),
        "product": np.repeat(items["product"].to_numpy(), n_days),
        "region": np.repeat(items["region"].to_numpy(), n_days),
        "promotion": promo.reshape(-1),
        **{name: np.tile(values, n_items) for name, values in day_columns.items()},
    }, columns=COLUMNS)


def generate_sales(products: int = 25, regions: int = 5, start: str = DEFAULT_START,
                   end: str = DEFAULT_END, seed: int = 42, future_days: int = 0) -> pd.DataFrame:
    """The sales frame only (future rows, if any, have an empty target_value)."""
    return generate(products, regions, start, end, seed, future_days).frame


def write_frame(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write CSV (optionally .gz) or Parquet by extension, atomically (temp file + os.replace)."""
    path = Path(path)
    suffixes = "".join(path.suffixes[-2:]).lower()
    if not suffixes.endswith((".parquet", ".pq", ".csv.gz", ".csv")):
        raise ValueError(f"output {path}: use a .csv, .csv.gz or .parquet file name")
    with staged_file(path) as tmp:
        if suffixes.endswith((".parquet", ".pq")):
            frame.to_parquet(tmp, index=False)
        elif suffixes.endswith(".csv.gz"):
            frame.to_csv(tmp, index=False, compression="gzip")
        else:
            write_frame_csv(frame, tmp)   # same text as DataFrame.to_csv, several times faster
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m processing.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output .csv, .csv.gz or .parquet (default %(default)s)")
    parser.add_argument("--products", type=int, default=25, help="products, spread over 5 categories (default 25)")
    parser.add_argument("--regions", type=int, default=5, help="regions per product (default 5)")
    parser.add_argument("--start", default=DEFAULT_START, help="first day (default %(default)s)")
    parser.add_argument("--end", default=DEFAULT_END, help="last day of history (default %(default)s)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--future-days", type=int, default=0,
                        help="append N future rows per item with known covariates and an empty target")
    parser.add_argument("--future-truth", default=None, help="also write the true future targets here")
    return parser


@step_main("error", ValueError)
def main(argv: Optional[Sequence[str]] = None) -> int:
    console.setup()
    args = build_parser().parse_args(argv)
    if args.future_truth and args.future_days <= 0:
        print("--future-truth needs --future-days N (N >= 1)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    data = generate(args.products, args.regions, args.start, args.end, args.seed, args.future_days)
    write_frame(data.frame, args.out)
    if args.future_truth:
        write_frame(data.truth, args.future_truth)
    frame = data.frame
    history = frame[frame["target_value"].notna()]
    print(f"Generated {len(frame)} rows of sales data for {frame['item_id'].nunique()} unique items "
          f"({len(frame) - len(history)} future rows) in {time.perf_counter() - started:.2f}s -> {args.out}")
    print(f"Date range: {history['timestamp'].min()} to {history['timestamp'].max()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
