"""The local forecasting AutoML engine: Autopilot's part in local mode.

    from forecasting import EngineConfig, train, load_model
    config = EngineConfig.from_automl_request(request)
    result = train("train.csv", config, "out/")
    model = load_model(result.model_dir)
    model.predict_file("context.csv", "forecast.csv")

Importing it changes nothing in the process: the programs that run it set their threading
environment when they start (processing.kernel.process_env: the CLIs, the worker processes,
the AutoML worker, the endpoint, the local runtime).
"""

from .artifact import ForecastModel, load_model
from .config import EngineConfig
from .engine import TrainResult, train

__all__ = ["EngineConfig", "ForecastModel", "TrainResult", "load_model", "train"]
