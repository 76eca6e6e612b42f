"""CLI: python -m forecasting.train --request R.json --train T.csv --out DIR [--time-limit S]"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

from processing.kernel import console
from processing.kernel.process_env import configure_threads

from .config import EngineConfig
from .engine import train
from .models import PRESETS, lists_all


def main(argv=None) -> int:
    configure_threads()  # before LightGBM loads OpenMP
    console.setup()
    parser = argparse.ArgumentParser(prog="python -m forecasting.train", description=__doc__)
    parser.add_argument("--request", required=True, help="CreateAutoMLJobV2 request JSON file")
    parser.add_argument("--train", required=True, help="AutoML training CSV (file or folder)")
    parser.add_argument("--out", required=True, help="output folder (model/ and leaderboard.csv)")
    parser.add_argument("--time-limit", type=float, default=None, help="seconds (default: the request's)")
    parser.add_argument("--preset", default=None, help="candidate preset when the request lists no algorithms")
    args = parser.parse_args(argv)
    if args.preset is not None and args.preset not in PRESETS:
        parser.error(f"--preset {args.preset}: not a preset; the presets are {', '.join(sorted(PRESETS))}")
    path = Path(args.request)
    try:
        request = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        parser.error(f"--request {path}: cannot read JSON ({exc})")
    overrides = {"preset": args.preset} if args.preset else {}
    config = EngineConfig.from_automl_request(request, **overrides)
    if args.preset and config.algorithms is not None and not lists_all(config.algorithms):  # the list wins: say so
        listed = ", ".join(config.algorithms)
        print(f"note: --preset {args.preset} is not used: the request lists its algorithms ({listed})")
    result = train(args.train, config, args.out, time_limit_seconds=args.time_limit)  # the engine logs
    print(
        json.dumps(
            {
                "best_candidate_name": result.best_candidate_name,
                "objective_metric": {"name": result.objective_metric, "value": result.objective_value},
                "model_dir": str(result.model_dir),
            }
        )
    )
    return 0


class _CallableModule(types.ModuleType):
    """Importing this CLI module sets `forecasting.train` to the module (Python's import system
    does that for submodules), shadowing the `train` function of the package API. The module
    stays callable as that function, so `from forecasting import train` keeps working."""

    def __call__(self, *args, **kwargs):
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
