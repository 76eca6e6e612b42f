"""Calendar and holiday features of timestamps: what a global model needs to know about dates.

Holiday proximity (days to the next and since the last holiday of the configured country,
and which holiday is nearest) lets a model learn effects that spread around the day itself,
which a 0/1 "is holiday" flag cannot express.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Optional

import numpy as np
import pandas as pd

from processing.kernel.contracts import split_frequency

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


def monthly_steps(frequency: str) -> bool:
    """One calendar month per step ("M", "1M"): the steps whose working days `weekdays_in_month`
    counts. A multi-month step is left out: its label (period start or end) does not say which
    months it spans."""
    return split_frequency(frequency) == (1, "M")


WEEKDAYS_PER_MONTH = 365.25 * 5 / 7 / 12  # 21.74: an average month's working days


def weekdays_in_month(ds) -> np.ndarray:
    """Monday-to-Friday days in each timestamp's calendar month (20 to 23).

    A month's total of a flow that is busier on working days (boardings, orders) moves with them
    from year to year, which the month of the year alone cannot say: X-13's one-coefficient
    trading-day regressor. Measured in docs/engine.md "Sixteenth session: trading days in
    monthly data"; read by LightGBM and DynamicRegression."""
    months = np.asarray(ds, "datetime64[M]")
    return np.busday_count(months.astype("datetime64[D]"), (months + 1).astype("datetime64[D]")).astype(float)


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


# --- holidays the training history has never seen ------------------------------------------------
# A forecast period within UNSEEN_CAP days of a holiday, at a signed distance from it that no date
# of the training history had from any occurrence of that holiday, lies where no member could learn
# the holiday's effect: one year of history holds no Christmas fortnight, nor the days before the
# New Year it starts on (elecdaily Dec 18-31: p50 9% above the actuals, 8 of 14 days below p10).
# There the ensemble's band is widened by how much the history's own days near holidays deviated
# beyond its normal days (`holiday_spread`; docs/engine.md, "Calibration attempts").
UNSEEN_CAP = NEAR_CAP
SPREAD_WEEKS = (2, 3)  # a day's baseline: the median of the same weekday this many weeks before and after
SPREAD_MAX_SERIES = 200  # series sampled (evenly spaced) for the spread: more add little to a pooled quantile
CALENDAR_UNITS = ("D", "H", "min")  # the frequencies whose models read the holiday calendar


def _days(ds) -> np.ndarray:
    return np.asarray(ds, "datetime64[ns]").astype("datetime64[D]").astype(np.int64)


def _holiday_offsets(country: str, first: int, last: int, cap: int) -> pd.DataFrame:
    """(day, key) of every day within `cap` (exclusive) of a holiday near days first..last:
    key "name|offset", offset = day - the holiday's date."""
    lo = pd.Timestamp(int(first), unit="D").year - 1
    hi = pd.Timestamp(int(last), unit="D").year + 1
    table = holiday_table(country, range(lo, hi + 1))
    hdays = table["date"].to_numpy("datetime64[D]").astype(np.int64)
    offsets = np.arange(-cap + 1, cap)
    day = (hdays[:, None] + offsets[None, :]).ravel()
    key = [f"{n}|{o}" for n in table["name"] for o in offsets]
    return pd.DataFrame({"day": day, "key": key, "distance": np.tile(np.abs(offsets), len(hdays))})


def _covered_days(panel, n_tail: int = 0) -> np.ndarray:
    """The days some series' history (its rows but the last n_tail) spans, first to last row: from
    each series' ends, not the rows themselves (27M rows at 25,000 daily series)."""
    keep = panel.lengths - n_tail >= 2
    if not keep.any():
        return np.zeros(0, np.int64)
    first = _days(panel.ds[panel.indptr[:-1][keep]])
    last = _days(panel.ds[panel.indptr[1:][keep] - 1 - n_tail])
    start = first.min()
    marks = np.zeros(last.max() - start + 2, int)
    np.add.at(marks, first - start, 1)
    np.add.at(marks, last - start + 1, -1)
    return start + np.flatnonzero(np.cumsum(marks)[:-1] > 0)


def seen_holiday_offsets(country: Optional[str], days: np.ndarray, cap: int = UNSEEN_CAP) -> frozenset:
    """The "holiday name|signed day offset" pairs within `cap` that some of `days` (day numbers of
    a training history) stands at."""
    if not country or not len(days):
        return frozenset()
    near = _holiday_offsets(country, days.min(), days.max(), cap)
    return frozenset(near.loc[np.isin(near["day"].to_numpy(), days), "key"])


def unseen_holiday_periods(country: Optional[str], ds, seen: frozenset, cap: int = UNSEEN_CAP) -> np.ndarray:
    """True where a timestamp of `ds` stands within `cap` days of a holiday at a signed offset
    that is not in `seen` (that no date of the history stood at from that holiday)."""
    ds = np.asarray(ds)
    if not country or not len(ds):
        return np.zeros(len(ds), bool)
    days, inverse = np.unique(_days(ds), return_inverse=True)
    near = _holiday_offsets(country, days.min(), days.max(), cap)
    unseen = near.loc[~near["key"].isin(seen), "day"].to_numpy()
    return np.isin(days, unseen)[inverse]


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, levels) -> np.ndarray:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(levels, cum, v)


def _holiday_days(country: str, panel, cap: int, n_tail: int):
    """Per day of (a sample of) the history's series: (relative deviation from its baseline,
    baseline, distance to the nearest holiday, that holiday's name, the series' index), or None."""
    keep = np.flatnonzero(panel.lengths - n_tail >= 2) if country else np.zeros(0, int)
    if not len(keep):
        return None
    picks = keep[np.unique(np.linspace(0, len(keep) - 1, min(len(keep), SPREAD_MAX_SERIES)).round().astype(int))]
    covered = _covered_days(panel, n_tail)
    lo, hi = pd.Timestamp(int(covered.min()), unit="D").year - 1, pd.Timestamp(int(covered.max()), unit="D").year + 1
    table = holiday_table(country, range(lo, hi + 1))
    hdays_all = table["date"].to_numpy("datetime64[D]").astype(np.int64)
    hdays, first = np.unique(hdays_all, return_index=True)
    hnames = table["name"].to_numpy()[first]
    if not len(hdays):
        return None
    read = _series_days(panel, picks, n_tail)
    if read is None:
        return None
    d, y, base, series = read
    pos = np.searchsorted(hdays, d)
    ib, ia = np.clip(pos - 1, 0, len(hdays) - 1), np.clip(pos, 0, len(hdays) - 1)
    before = np.abs(d - hdays[ib])
    after = np.abs(hdays[ia] - d)
    return y / base - 1, base, np.minimum(before, after), np.where(before <= after, hnames[ib], hnames[ia]), series


def _excess(rel, size, near, normal, levels) -> np.ndarray:
    """sqrt(max(q_near^2 - q_normal^2, 0)) per level on its side of zero (0 at the median)."""
    out = np.zeros(len(levels))
    if near.sum() < 2 or normal.sum() < 2:
        return out
    below = levels < 0.5
    sides = []
    for part in (near, normal):
        q = _weighted_quantile(rel[part], size[part], levels)
        sides.append(np.where(below, np.minimum(q, 0), np.maximum(q, 0)))
    extra = np.sqrt(np.maximum(sides[0] ** 2 - sides[1] ** 2, 0.0))
    out = np.where(below, -extra, extra)
    out[np.abs(levels - 0.5) < 1e-9] = 0.0
    return out


def holiday_spread(country: Optional[str], panel, levels, cap: int = UNSEEN_CAP, n_tail: int = 0) -> np.ndarray:
    """Per quantile level, the offset from the median, as a share of it, that a holiday of unknown
    effect adds to a period's band: (q,), negative below the median, positive above, 0 at it.

    Each day of (a sample of) the history's series (its rows but the last n_tail; a sub-daily
    series' daily totals) is read against its baseline, the median of the same weekday SPREAD_WEEKS
    weeks before and after: a relative deviation, weighted by the baseline as wQL weighs series.
    At each level the deviation of days within `cap` of a holiday beyond that of normal days (no
    holiday within `cap`) is sqrt(max(q_near^2 - q_normal^2, 0)) on its side of zero: the spread
    holidays added to the normal noise, as if independent of it."""
    return holiday_spreads(country, panel, levels, cap, n_tail)[0]


def holiday_spreads(country: Optional[str], panel, levels, cap: int = UNSEEN_CAP, n_tail: int = 0) -> tuple:
    """(pooled `holiday_spread` (q,), {uid: (q,) spread of that series' own days} or None).

    One series' holidays move it by their own amount (flights barely move on Veterans Day, a
    carrier's Thanksgiving is its own), so each series gets its excess over its own normal days,
    the pooled one where it has under 2 of either. Per series only when every series was read
    (at most SPREAD_MAX_SERIES); a larger panel keeps the pooled spread for all."""
    levels = np.asarray(levels, float)
    read = _holiday_days(country, panel, cap, n_tail) if country else None
    if read is None:
        return np.zeros(len(levels)), None
    rel, size, dist, _, series = read
    near, normal = dist < cap, dist >= cap
    pooled = _excess(rel, size, near, normal, levels)
    if panel.n_series > SPREAD_MAX_SERIES:
        return pooled, None
    own = {}
    for i in np.unique(series):
        mine = series == i
        if (near & mine).sum() >= 2 and (normal & mine).sum() >= 2:
            own[panel.uids[i]] = _excess(rel, size, near & mine, normal & mine, levels)
    return pooled, own or None


@dataclasses.dataclass
class UnseenHolidays:
    """What a training history knows of the holidays: the offsets it saw and the spread of their
    effects. `spread_rows` gives the band's extra spread for a forecast's periods."""

    country: str
    seen: frozenset
    spread: np.ndarray  # (q,) relative offsets (holiday_spread), pooled over the series
    cap: int = UNSEEN_CAP
    series_spread: Optional[dict] = None  # {uid: (q,)} each series' own (holiday_spreads)

    @classmethod
    def learn(
        cls, country: Optional[str], unit: str, panel, levels, n_tail: int = 0, future_ds=None
    ) -> Optional["UnseenHolidays"]:
        """From a training panel (its rows but the last n_tail per series: a backtest window's
        history); None without a calendar, on frequencies whose models do not read it, when the
        history's holidays deviate no more than its normal days, or (given the forecast's
        timestamps `future_ds`) when no period of it needs the spread (its estimate is skipped)."""
        if not country or unit not in CALENDAR_UNITS or panel.n_series == 0:
            return None
        seen = seen_holiday_offsets(country, _covered_days(panel, n_tail))
        if future_ds is not None and not unseen_holiday_periods(country, future_ds, seen).any():
            return None
        spread, own = holiday_spreads(country, panel, levels, UNSEEN_CAP, n_tail)
        if not np.any(spread) and not (own and any(np.any(v) for v in own.values())):
            return None
        return cls(country, seen, spread, series_spread=own)

    def spread_rows(self, ds, n_series: int, uids=None) -> Optional[np.ndarray]:
        """(n_series, h, q) relative offsets for `ensemble.widen_unseen_holidays` of the forecast
        periods `ds` (n_series x h, series after series; `uids` their series, for their own
        spreads): the spread where a period stands near a holiday at an unseen offset, else 0;
        None when no period does."""
        flagged = unseen_holiday_periods(self.country, ds, self.seen, self.cap)
        if not flagged.any():
            return None
        pooled = np.asarray(self.spread, float)
        own = self.series_spread  # models saved before it existed read the class default: pooled only
        if own and uids is not None:
            per = np.stack([np.asarray(own.get(u, pooled), float) for u in uids])
        else:
            per = np.tile(pooled, (n_series, 1))
        return flagged.reshape(n_series, -1, 1) * per[:, None, :]


# --- the panel's own holiday effects, as a feature ---------------------------------------------
LIFT_MAX_SERIES = SPREAD_MAX_SERIES  # series read (evenly spaced) for the lifts


def _series_days(panel, picks, n_tail: int = 0):
    """Per day of the `picks` series (their last `n_tail` rows left out): (day number, value,
    baseline, the series' index), the baseline the median of the same weekday SPREAD_WEEKS weeks
    before and after (at least 2 of them); None when no day has one."""
    lags = [7 * w * s for w in SPREAD_WEEKS for s in (-1, 1)]
    out_d, out_y, out_b, out_s = [], [], [], []
    for i in picks:
        rows = slice(panel.indptr[i], panel.indptr[i + 1] - n_tail)
        y, days = panel.y[rows], _days(panel.ds[rows])
        ok = np.isfinite(y)
        if ok.sum() < 2:
            continue
        days_u, inverse = np.unique(days[ok], return_inverse=True)
        start = days_u[0]
        grid = np.full(days_u[-1] - start + 1, np.nan)
        grid[days_u - start] = np.bincount(inverse, weights=y[ok])
        idx = np.arange(len(grid))
        around = np.stack(
            [
                np.where((idx + k >= 0) & (idx + k < len(grid)), grid[np.clip(idx + k, 0, len(grid) - 1)], np.nan)
                for k in lags
            ]
        )
        around[:, np.sum(np.isfinite(around), axis=0) < 2] = np.nan
        with warnings.catch_warnings():  # columns without 2 neighbours are all-NaN on purpose
            warnings.simplefilter("ignore", RuntimeWarning)
            base = np.nanmedian(around, axis=0)
        good = np.isfinite(grid) & np.isfinite(base) & (base > 0)
        out_d.append(idx[good] + start)
        out_y.append(grid[good])
        out_b.append(base[good])
        out_s.append(np.full(good.sum(), i))
    if not out_d:
        return None
    return tuple(np.concatenate(x) for x in (out_d, out_y, out_b, out_s))


class HolidayLift:
    """The panel's relative deviation from its baseline on each holiday's days (`cap` either side),
    learnt from the training history: sum of y / sum of baselines - 1 over the series read, per
    holiday name and signed day offset; an offset the history never saw of a holiday gets the mean
    over the holidays seen at that offset. A feature a global model can carry from one series'
    holidays to another's, and from the seen holidays to an unseen one."""

    def __init__(self, country: Optional[str], cap: int = NEAR_CAP):
        self.country = country
        self.cap = cap
        self.lift: dict = {}
        self.pooled: dict = {}

    def fit(self, panel) -> "HolidayLift":
        if not self.country or panel.n_series == 0:
            return self
        keep = np.flatnonzero(panel.lengths >= 2)
        if not len(keep):
            return self
        picks = keep[np.unique(np.linspace(0, len(keep) - 1, min(len(keep), LIFT_MAX_SERIES)).round().astype(int))]
        read = _series_days(panel, picks)
        if read is None:
            return self
        day, y, base, _series = read
        near = _holiday_offsets(self.country, day.min(), day.max(), self.cap)
        days_u, inv = np.unique(day, return_inverse=True)
        sum_y = np.bincount(inv, weights=y)
        sum_b = np.bincount(inv, weights=base)
        pos = np.searchsorted(days_u, near["day"].to_numpy())
        pos_c = np.clip(pos, 0, len(days_u) - 1)
        hit = (pos < len(days_u)) & (days_u[pos_c] == near["day"].to_numpy())
        seen = near.loc[hit].assign(y=sum_y[pos_c[hit]], b=sum_b[pos_c[hit]])
        grouped = seen.groupby("key")[["y", "b"]].sum()
        self.lift = (grouped["y"] / grouped["b"] - 1).to_dict()
        by_offset: dict = {}
        for key, value in self.lift.items():
            by_offset.setdefault(int(key.rsplit("|", 1)[1]), []).append(value)
        self.pooled = {o: float(np.mean(v)) for o, v in by_offset.items()}
        return self

    def transform(self, ds) -> np.ndarray:
        """Per timestamp: the lift of the holiday it stands near (the nearest, if two), 0 when none."""
        ds = np.asarray(ds)
        out = np.zeros(len(ds))
        if not self.country or not len(ds) or not (self.lift or self.pooled):
            return out
        days, inverse = np.unique(_days(ds), return_inverse=True)
        near = _holiday_offsets(self.country, days.min(), days.max(), self.cap)
        offset = near["key"].str.rsplit("|", n=1).str[1].astype(int).to_numpy()
        value = np.array([self.lift.get(k, self.pooled.get(o, 0.0)) for k, o in zip(near["key"], offset)], float)
        order = np.argsort(-np.abs(offset), kind="stable")  # the nearest holiday written last wins
        per_day = np.zeros(len(days))
        pos = np.searchsorted(days, near["day"].to_numpy()[order])
        pos_c = np.clip(pos, 0, len(days) - 1)
        hit = (pos < len(days)) & (days[pos_c] == near["day"].to_numpy()[order])
        per_day[pos_c[hit]] = value[order][hit]
        return per_day[inverse]
