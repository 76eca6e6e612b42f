"""Calendar and holiday features of timestamps: what a global model needs to know about dates.

Holiday proximity (days to the next and since the last holiday of the configured country,
and which holiday is nearest) lets a model learn effects that spread around the day itself,
which a 0/1 "is holiday" flag cannot express.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import pandas as pd

PROXIMITY_CAP = 45  # days; beyond this a holiday is "far"
# LightGBM's cap: with 45 days, one year of daily history sees each holiday once and the
# (days to, days since) pair all but names the date, so the trees learn the dates of last year
# (nycflights 2013 with the US calendar: wQL 0.0907 -> 0.0970 over 3 seeds). Within a week of a
# holiday only, the effect is still learnable (elecdaily with AU: 0.0412 -> 0.0360).
NEAR_CAP = 8


def calendar_features(ds: np.ndarray, unit: str) -> dict:
    """Features varying within the season of this frequency unit (numbers, NaN-free)."""
    idx = pd.DatetimeIndex(ds)
    out = {}
    if unit in ("min",):
        out["minute"] = idx.minute.to_numpy(float)
    if unit in ("min", "H"):
        out["hour"] = idx.hour.to_numpy(float)
    if unit in ("min", "H", "D"):
        out["day_of_week"] = idx.dayofweek.to_numpy(float)
        out["day_of_month"] = idx.day.to_numpy(float)
    if unit in ("D", "W"):
        out["day_of_year"] = idx.dayofyear.to_numpy(float)
        out["week_of_year"] = idx.isocalendar().week.to_numpy(float)
    out["month"] = idx.month.to_numpy(float)
    return out


def holiday_table(country: Optional[str], years) -> pd.DataFrame:
    """(date, name) of the country's holidays on their actual dates.

    Observed days off (a Sunday holiday moved to Monday) are left out: demand follows the
    holiday itself (Christmas is Dec 25 whatever day the offices close), and mixing both
    would blur the distance features by a day in some years.
    """
    if not country:
        return pd.DataFrame({"date": pd.to_datetime([]), "name": []})
    rows = _holiday_rows(country, tuple(sorted(set(int(y) for y in years))))
    return pd.DataFrame(list(rows), columns=["date", "name"])


@functools.lru_cache(maxsize=64)
def _holiday_rows(country: str, years: tuple) -> tuple:
    """holiday_table's rows, computed once per country and years in a process: the holidays
    package builds them in ~0.1 s, and a batch transform asks once per request (415 at 25k series)."""
    import holidays

    try:
        table = holidays.country_holidays(country, years=list(years), observed=False)
    except NotImplementedError:
        raise ValueError(
            f"HolidayConfig CountryCode {country!r} is not known to the holidays package; "
            "use an ISO 3166-1 alpha-2 code such as US, DE, GB"
        ) from None
    return tuple(
        sorted((pd.Timestamp(d), str(n).replace(" (observed)", "").split(";")[0].strip()) for d, n in table.items())
    )


class HolidayFeaturizer:
    """Signed day distances to the nearest holidays and the nearest holiday's identity.

    cap: distances at or beyond it read as `cap` ("far") and the identity as unknown. A short
    cap keeps one year of daily history from using the distances as a date (see NEAR_CAP).
    """

    def __init__(self, country: Optional[str], cap: int = PROXIMITY_CAP):
        self.country = country
        self.cap = cap
        self.names: list = []

    def fit(self, ds: np.ndarray) -> "HolidayFeaturizer":
        if self.country and len(ds):
            years = range(pd.Timestamp(ds.min()).year - 1, pd.Timestamp(ds.max()).year + 3)
            self.names = sorted(set(holiday_table(self.country, years)["name"]))
        return self

    def transform(self, ds: np.ndarray) -> dict:
        if not self.country or not len(ds):
            return {}
        days = pd.DatetimeIndex(ds).normalize()
        years = range(days.min().year - 1, days.max().year + 2)
        table = holiday_table(self.country, years)
        hdays = table["date"].to_numpy("datetime64[D]").astype(np.int64)
        code = {n: i for i, n in enumerate(self.names)}
        hcodes = np.array([code.get(n, np.nan) for n in table["name"]], float)
        d = days.to_numpy("datetime64[D]").astype(np.int64)
        nxt = np.searchsorted(hdays, d, side="left")
        prv = nxt - 1
        nxt_c = np.clip(nxt, 0, len(hdays) - 1)
        prv_c = np.clip(prv, 0, len(hdays) - 1)
        cap = getattr(self, "cap", PROXIMITY_CAP)  # models pickled before the cap existed
        to_next = np.where(nxt < len(hdays), hdays[nxt_c] - d, cap).astype(float)
        since_last = np.where(prv >= 0, d - hdays[prv_c], cap).astype(float)
        # the holiday itself: distance 0 both ways
        on = (nxt < len(hdays)) & (to_next == 0)
        since_last = np.where(on, 0.0, since_last)
        near_next = to_next <= since_last
        nearest_code = np.where(near_next, hcodes[nxt_c], hcodes[prv_c])
        return {
            "days_to_holiday": np.minimum(to_next, cap),
            "days_since_holiday": np.minimum(since_last, cap),
            "nearest_holiday": np.where(np.minimum(to_next, since_last) < cap, nearest_code, np.nan),
        }
