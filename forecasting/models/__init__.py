"""The one candidate registry, Autopilot's algorithm names, and presets (plain data)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Candidate, Fallbacks, Forecast, TimeBudgetExceeded  # noqa: F401  (re-exported for the engine's callers)
from .deepar import DeepAR
from .direct_tabular import DirectTabular
from .lightgbm_global import LightGBMGlobal, LightGBMSeasonal
from .lightgbm_recursive import LightGBMRecursive
from .local import LocalModel  # noqa: F401  (the base of per-series models)
from .naive import SeasonalDrift, SeasonalDriftLong, SeasonalNaive
from .npts import NPTS, NPTSLevel
from .prophet_model import Prophet
from .regression import DynamicRegression
from .seasonal_ets import SeasonalETS
from .statistical import ARIMA, ETS, AirlineARIMA, Theta
from .theta_classic import ThetaClassic

if TYPE_CHECKING:
    from ..config import EngineConfig

CANDIDATES = {
    cls.name: cls
    for cls in (
        SeasonalNaive,
        ETS,
        SeasonalETS,
        Theta,
        ARIMA,
        AirlineARIMA,
        NPTS,
        NPTSLevel,
        SeasonalDrift,
        SeasonalDriftLong,
        ThetaClassic,
        DynamicRegression,
        LightGBMGlobal,
        LightGBMSeasonal,
        LightGBMRecursive,
        DirectTabular,
        Prophet,
        DeepAR,
    )
}
# the candidate that always runs first and survives: the job's floor and the ensemble's last resort
BASELINE = next(name for name, cls in CANDIDATES.items() if cls.is_baseline)

# Autopilot algorithm -> local candidates in order of preference: the first one installed plays
# its part. Prophet and DeepAR need optional packages (the `prophet` and `deepar` extras).
AUTOPILOT_ALGORITHMS = {
    "ets": ("ETS",),
    "arima": ("ARIMA",),
    "npts": ("NPTS",),
    "prophet": ("Prophet", "DynamicRegression"),
    "cnn-qr": ("LightGBM",),
    "deepar": ("DeepAR", "LightGBM"),
}
# candidates that come along with one playing an Autopilot algorithm's part
COMPANIONS = {"LightGBM": ("LightGBMSeasonal",)}
# the candidate that IS the algorithm; anything else playing its part is labelled a stand-in
GENUINE = {"ets": "ETS", "arima": "ARIMA", "npts": "NPTS", "prophet": "Prophet", "deepar": "DeepAR"}
KINDS = {
    "LightGBM": "global",
    "LightGBMSeasonal": "global",
    "LightGBMRecursive": "global, recursive",
    "DynamicRegression": "Prophet-style",
    "DeepAR": "DeepAR-style RNN, torch",
}

PRESETS = {
    # order matters: cheap first, so a tight time limit still gets the useful ones
    # default: the accurate and fast ones; per-series statsforecast fits cost ~0.1-1 s per series
    "default": ("SeasonalNaive", "NPTS", "DynamicRegression", "LightGBM", "LightGBMSeasonal"),
    "best_quality": (
        "SeasonalNaive",
        "NPTS",
        "DynamicRegression",
        "LightGBM",
        "LightGBMSeasonal",
        "Theta",
        "ETS",
        "ARIMA",
        "Prophet",
        "DeepAR",
    ),  # the last two only when installed
    "statistical": ("SeasonalNaive", "ETS", "Theta", "ARIMA", "NPTS"),
}


def candidate_names(algorithms=None, preset: str = "default") -> list:
    """Autopilot algorithm names (or None for the preset) -> registry names; baseline always first."""
    if algorithms is None:
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; available presets are: {sorted(PRESETS)}")
        names = list(PRESETS[preset])
    else:
        names = [BASELINE]
        for algo in algorithms:
            key = str(algo).strip().lower()
            if key in AUTOPILOT_ALGORITHMS:
                mapped = (playing(key),)
            elif str(algo) in CANDIDATES:
                mapped = (str(algo),)
            else:
                raise ValueError(
                    f"Unknown algorithm {algo!r}; Autopilot names are {sorted(AUTOPILOT_ALGORITHMS)} "
                    f"and local candidates are {sorted(CANDIDATES)}"
                )
            names.extend(n for n in mapped if n not in names)
            # a variant that plays the same part (the engine drops it where it does not suit the data)
            names.extend(n for n in COMPANIONS.get(mapped[0], ()) if n not in names)
    if BASELINE not in names:
        names.insert(0, BASELINE)
    # cheapest first: under a time limit the expensive ones are the ones cut
    names = sorted(names, key=lambda n: CANDIDATES[n].relative_cost)
    return [n for n in names if CANDIDATES[n].available()]


# Members the default preset adds by data frequency (unit -> names). Weekly: the yearly season is 52
# steps, which DynamicRegression's three-year window and LightGBM's lags on few series track poorly,
# while Theta on ten years (statistical.THETA_SEASONS) does (us_gasoline, docs/engine.md)
# Weekly, monthly, quarterly (unit M): the standard Theta method (AutoGluon's member; small panels only,
# ThetaClassic.suits), and NPTS on values moved to today's level in place of NPTS, whose years-old
# values pulled trending series down (visnights, prison, us_gasoline; docs/engine.md "Seasonal data");
# monthly and quarterly: seasonal naive moved by the panel's growth over the last season and the mean
# over three (SeasonalDrift, SeasonalDriftLong: visnights, departures, prison, aus_accommodation), and the
# airline seasonal ARIMA on logs on panels of 100+ series (AirlineARIMA.suits: us_employment).
# Weekly data and monthly/quarterly panels of 100+ series (LightGBMRecursive.suits): AutoGluon's
# RecursiveTabular (us_gasoline, us_employment; docs/engine.md "The recursive LightGBM model").
# Weekly panels under 100 series whose median history holds 5 seasons + 1 + h (DirectTabular.suits_panel):
# AutoGluon's DirectTabular, one quantile LightGBM per level over every step (us_gasoline 0.01813 ->
# 0.01772; docs/engine.md "Sixth session").
# Daily: ETS(A,N,A) on panels of 10-99 series (SeasonalETS.suits), in place of LightGBMSeasonal there
FREQUENCY_MEMBERS = {
    "W": ("Theta", "ThetaClassic", "LightGBMRecursive", "DirectTabular"),
    "M": ("ThetaClassic", "SeasonalDrift", "SeasonalDriftLong", "AirlineARIMA", "LightGBMRecursive"),
    "D": ("SeasonalETS",),
}
FREQUENCY_REPLACES = {"W": {"NPTS": "NPTSLevel"}, "M": {"NPTS": "NPTSLevel"}}


def lists_all(algorithms) -> bool:
    """True when a list names every Autopilot algorithm: Autopilot then trains the same set as with
    no list (its default), so the engine trains its own default members, the set bench_real measures
    (the training pipeline's default `AutoMLAlgorithms` is all six; docs/engine.md "Fourteenth session")."""
    return algorithms is not None and {str(a).strip().lower() for a in algorithms} == set(AUTOPILOT_ALGORITHMS)


def default_members(config: EngineConfig) -> list:
    """The candidates a job trains unless told: its algorithms or preset, plus on the default
    preset the members its data frequency needs (FREQUENCY_MEMBERS, FREQUENCY_REPLACES), when installed.
    A list of all six Autopilot algorithms counts as no list (`lists_all`)."""
    algorithms = None if lists_all(config.algorithms) else config.algorithms
    names = candidate_names(algorithms, config.preset)
    if algorithms is None and config.preset == "default":
        swap = FREQUENCY_REPLACES.get(config.frequency_unit, {})
        names = [swap.get(n, n) for n in names]
        extra = [n for n in FREQUENCY_MEMBERS.get(config.frequency_unit, ()) if n not in names]
        names = candidate_names(names + extra) if (extra or swap) else names
    return names


def playing(algorithm: str) -> str:
    """The installed candidate that plays an Autopilot algorithm's part."""
    options = AUTOPILOT_ALGORITHMS[algorithm]
    return next((n for n in options if CANDIDATES[n].available()), options[-1])


def stands_in_for(name: str) -> list:
    """Autopilot algorithms this candidate plays without being them (empty for the genuine ones)."""
    return [algo for algo in AUTOPILOT_ALGORITHMS if playing(algo) == name and GENUINE.get(algo) != name]


def display_name(name: str) -> str:
    """Leaderboard label: what the candidate is, and which Autopilot algorithm it stands in for."""
    kind = KINDS.get(name)
    standing = stands_in_for(name)
    if standing:
        return f"{name} ({kind}, stands in for {'/'.join(standing)})"
    return f"{name} ({kind})" if kind else name


def create(name: str, config, **params) -> Candidate:
    if name not in CANDIDATES:
        raise ValueError(f"Unknown model: {name!r}, available models are: {sorted(CANDIDATES)}")
    return CANDIDATES[name](config, **params)
