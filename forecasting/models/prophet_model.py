"""Prophet (Meta's prophet package), per series; used for Autopilot's `prophet` when installed.

Optional: the core install does not need prophet; without it `prophet` maps to the
DynamicRegression stand-in.
"""
from __future__ import annotations

import importlib.util

from .base import Candidate


class Prophet(Candidate):
    name = "Prophet"
    relative_cost = 8
    autopilot_names = ("prophet",)

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("prophet") is not None

    def _predict(self, history, future):
        raise NotImplementedError("being built")
