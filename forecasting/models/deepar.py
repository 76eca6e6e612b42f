"""A DeepAR-style network in torch (global autoregressive RNN with a likelihood head).

Optional: the core install does not need torch; without it `deepar` maps to the LightGBM stand-in.
"""
from __future__ import annotations

import importlib.util

from .base import Candidate


class DeepAR(Candidate):
    name = "DeepAR"
    relative_cost = 7
    autopilot_names = ("deepar",)
    refit_every_window = False

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("torch") is not None

    def _predict(self, history, future):
        raise NotImplementedError("being built")
