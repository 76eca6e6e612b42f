"""The local forecasting AutoML engine: Autopilot's part in local mode.

    from forecasting import EngineConfig, train, load_model
    config = EngineConfig.from_automl_request(request)
    result = train("train.csv", config, "out/")
    model = load_model(result.model_dir)
    model.predict_file("context.csv", "forecast.csv")
"""
import os

# OpenMP threads that spin while idle made LightGBM ~50x slower on shared cores; every process
# that loads the engine (pipeline steps, the endpoint server, the CLIs) sleeps them instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .artifact import ForecastModel, load_model  # noqa: E402
from .config import EngineConfig  # noqa: E402
from .engine import TrainResult, train  # noqa: E402

__all__ = ["EngineConfig", "ForecastModel", "TrainResult", "load_model", "train"]
