"""The one candidate registry, Autopilot's algorithm names, and presets (plain data)."""
from __future__ import annotations

from .base import Candidate, TimeBudgetExceeded
from .lightgbm_global import LightGBMGlobal
from .naive import SeasonalNaive
from .npts import NPTS
from .regression import DynamicRegression
from .statistical import ARIMA, ETS, Theta

CANDIDATES = {cls.name: cls for cls in (SeasonalNaive, ETS, Theta, ARIMA, NPTS, DynamicRegression, LightGBMGlobal)}

# Autopilot algorithm -> the local candidates that play its part (honestly labelled when a stand-in)
AUTOPILOT_ALGORITHMS = {
    "ets": ("ETS",),
    "arima": ("ARIMA",),
    "npts": ("NPTS",),
    "prophet": ("DynamicRegression",),   # Prophet itself is not a dependency; same model family
    "cnn-qr": ("LightGBM",),
    "deepar": ("LightGBM",),
}
STAND_INS = {"DynamicRegression": "prophet", "LightGBM": "cnn-qr/deepar"}

PRESETS = {
    # order matters: cheap first, so a tight time limit still gets the useful ones
    # default: the accurate and fast ones; per-series statsforecast fits cost ~0.1-1 s per series
    "default": ("SeasonalNaive", "NPTS", "DynamicRegression", "LightGBM"),
    "best_quality": ("SeasonalNaive", "NPTS", "DynamicRegression", "LightGBM", "Theta", "ETS", "ARIMA"),
    "statistical": ("SeasonalNaive", "ETS", "Theta", "ARIMA", "NPTS"),
}


def candidate_names(algorithms=None, preset: str = "default") -> list:
    """Autopilot algorithm names (or None for the preset) -> registry names; baseline always first."""
    if algorithms is None:
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; available presets are: {sorted(PRESETS)}")
        names = list(PRESETS[preset])
    else:
        names = ["SeasonalNaive"]
        for algo in algorithms:
            key = str(algo).strip().lower()
            if key in AUTOPILOT_ALGORITHMS:
                mapped = AUTOPILOT_ALGORITHMS[key]
            elif str(algo) in CANDIDATES:
                mapped = (str(algo),)
            else:
                raise ValueError(f"Unknown algorithm {algo!r}; Autopilot names are {sorted(AUTOPILOT_ALGORITHMS)} "
                                 f"and local candidates are {sorted(CANDIDATES)}")
            names.extend(n for n in mapped if n not in names)
    if "SeasonalNaive" not in names:
        names.insert(0, "SeasonalNaive")
    # cheapest first: under a time limit the expensive ones are the ones cut
    names = sorted(names, key=lambda n: CANDIDATES[n].relative_cost)
    return [n for n in names if CANDIDATES[n].available()]


def display_name(name: str, algorithms=None) -> str:
    """Leaderboard label: says when a candidate stands in for an Autopilot algorithm."""
    if name in STAND_INS:
        kind = {"LightGBM": "global", "DynamicRegression": "Prophet-style"}[name]
        return f"{name} ({kind}, stands in for {STAND_INS[name]})"
    return name


def create(name: str, config, **params) -> Candidate:
    if name not in CANDIDATES:
        raise ValueError(f"Unknown model: {name!r}, available models are: {sorted(CANDIDATES)}")
    return CANDIDATES[name](config, **params)
