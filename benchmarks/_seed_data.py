"""The seed recipe's generator (step 1), used only when processing.generate is not available."""
from __future__ import annotations

import random
from datetime import datetime

import numpy as np
import pandas as pd

CATEGORIES = {
    "electronics": (["laptop", "smartphone", "tablet", "headphones", "camera"], (80, 150), 0.4, 0.03),
    "clothing": (["shirt", "pants", "dress", "jacket", "shoes"], (60, 120), 0.6, 0.01),
    "home": (["furniture", "appliance", "bedding", "kitchen", "decor"], (40, 100), 0.3, 0.02),
    "sports": (["equipment", "apparel", "footwear", "accessories", "outdoor"], (30, 80), 0.5, 0.01),
    "books": (["fiction", "nonfiction", "textbook", "childrens", "technical"], (20, 60), 0.2, -0.01),
}
REGIONS = ["North", "South", "East", "West", "Central"]


def generate_sales(start="2021-01-01", end="2023-12-31", products_per_category=None, regions=None,
                   seed=42) -> pd.DataFrame:
    """Same draws, in the same order, as the recipe's script (np and random seeded with 42)."""
    np.random.seed(seed)
    random.seed(seed)
    dates = pd.date_range(start, end, freq="D")
    hol = [datetime(y, m, d) for y, m, d in [(2021, 1, 1), (2021, 7, 4), (2021, 11, 25), (2021, 12, 25),
                                               (2022, 1, 1), (2022, 7, 4), (2022, 11, 24), (2022, 12, 25),
                                               (2023, 1, 1), (2023, 7, 4), (2023, 11, 23), (2023, 12, 25)]]
    hol_days = np.array([np.datetime64(h, "D") for h in hol])
    d64 = dates.values.astype("datetime64[D]")
    dist = np.abs((d64[:, None] - hol_days[None, :]).astype(int))
    boost = np.zeros(len(dates))
    for j in range(len(hol)):  # the recipe's loop: the last matching holiday wins
        boost = np.where(dist[:, j] <= 2, 0.8, np.where(dist[:, j] <= 7, 0.4, boost))
    is_hol = np.isin(d64, hol_days).astype(int)
    i = np.arange(len(dates))
    frames = []
    for category, (products, (lo, hi), season, trend) in CATEGORIES.items():
        if products_per_category:
            products = (products * (products_per_category // len(products) + 1))[:products_per_category]
            products = [f"{p}{k // 5}" if products_per_category > 5 else p for k, p in enumerate(products)]
        for product in products:
            for region in (regions or REGIONS):
                item_id = f"{category}_{product}_{region}"
                base = np.random.uniform(lo, hi)
                annual = season * np.sin(2 * np.pi * i / 365)
                quarterly = 0.2 * np.sin(2 * np.pi * i / 90)
                weekly = 0.3 * np.sin(2 * np.pi * i / 7)
                promo = np.empty(len(dates), int)
                noise = np.empty(len(dates))
                for t in range(len(dates)):  # interleaved draws, as in the recipe
                    promo[t] = 1 if random.random() < 0.05 else 0
                    noise[t] = np.random.normal(0, 5)
                demand = base * (1 + annual + quarterly + weekly + trend * i + boost + 0.7 * promo) + noise
                demand = np.maximum(0, demand)
                weather = 0.2 * np.sin(2 * np.pi * i / 365 + np.pi / 2) if category in ("clothing", "sports") else 0
                frames.append(pd.DataFrame({
                    "timestamp": dates.strftime("%Y-%m-%d"), "target_value": np.round(demand * (1 + weather), 2),
                    "item_id": item_id, "category": category, "product": product, "region": region,
                    "promotion": promo, "is_holiday": is_hol, "day_of_week": dates.weekday,
                    "month": dates.month, "quarter": (dates.month - 1) // 3 + 1}))
    return pd.concat(frames, ignore_index=True).sort_values(["item_id", "timestamp"], kind="stable").reset_index(drop=True)
