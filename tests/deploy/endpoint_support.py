"""Small synthetic sales, the PrepareData folder layout, and tiny engine models for endpoint/API tests."""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd

HORIZON = 7
QUANTILES = ("p10", "p50", "p90")
ITEMS = ("apple", "bread", "milk")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sales(days: int = 84, scale: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Daily sales of a few items: weekly pattern, promotion and day-of-week covariates, a static category."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2024-01-01", periods=days, freq="D")
    rows = []
    for index, item in enumerate(ITEMS):
        level = 20.0 + 10 * index
        promotion = (rng.random(days) < 0.1).astype(int)
        weekly = 1 + 0.3 * np.sin(2 * np.pi * np.arange(days) / 7)
        target = np.round(scale * (level * weekly * (1 + 0.5 * promotion) + rng.normal(0, 1, days)), 2)
        rows.append(pd.DataFrame({"item_id": item, "timestamp": stamps.strftime("%Y-%m-%d"),
                                  "target_value": np.maximum(target, 0), "promotion": promotion,
                                  "day_of_week": stamps.dayofweek,
                                  "category": "food" if item != "apple" else "fruit"}))
    return pd.concat(rows, ignore_index=True)


def prepare(frame: pd.DataFrame, output_dir: Path, horizon: int = HORIZON, grouping: tuple = ()) -> Path:
    """Run the real PrepareData (processing.prepare) on `frame`; returns its output folder."""
    from processing.prepare import main

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    raw = output_dir.parent / f"{output_dir.name}-input.csv"
    frame.to_csv(raw, index=False)
    code = main(["--input", str(raw), "--output-dir", str(output_dir), "--horizon", str(horizon),
                 "--frequency", "D", f"--grouping-columns={','.join(grouping)}"])
    assert code == 0, f"PrepareData failed with exit code {code}"
    return output_dir


def engine_config(horizon: int = HORIZON, quantiles: tuple = QUANTILES, grouping: tuple = ()):
    from forecasting import EngineConfig

    return EngineConfig(horizon=horizon, frequency="D", quantiles=quantiles, grouping_columns=grouping,
                        algorithms=("SeasonalNaive", "NPTS"), backtest_windows=1)


def train_model(frame: pd.DataFrame, out_dir: Path, horizon: int = HORIZON, quantiles: tuple = QUANTILES,
                grouping: tuple = ()) -> Path:
    """A tiny real engine model trained on all of `frame`; returns its model directory."""
    from forecasting import train

    result = train(frame, engine_config(horizon, quantiles, grouping), out_dir, time_limit_seconds=60, log=lambda *a, **k: None)
    return Path(result.model_dir)


def inference_csv(frame: pd.DataFrame, horizon: int = HORIZON) -> bytes:
    """Autopilot inference input: every item's history plus `horizon` future rows with an empty target."""
    parts = []
    for item, rows in frame.groupby("item_id"):
        last = pd.Timestamp(rows["timestamp"].iloc[-1])
        stamps = pd.date_range(last, periods=horizon + 1, freq="D")[1:]
        future = pd.DataFrame({"item_id": item, "timestamp": stamps.strftime("%Y-%m-%d"),
                               "target_value": np.nan, "promotion": 0, "day_of_week": stamps.dayofweek,
                               "category": rows["category"].iloc[-1]})
        parts += [rows, future]
    return pd.concat(parts, ignore_index=True).to_csv(index=False).encode()


def package_arn(version: int) -> str:
    return f"arn:aws:sagemaker:us-east-1:000000000000:model-package/demand-forecasting/{version}"


def deploy(settings, model_dir: Path, version: int, endpoint_name: str | None = None) -> dict:
    """Deploy like the deploy handler: model (ModelDataUrl in the local store) -> config -> endpoint + tags."""
    import shutil

    from botocore.exceptions import ClientError

    from deploy.clients import client
    from pipelines.local.store import local_path

    sm = client("sagemaker", settings)
    name = endpoint_name or settings.endpoint_name
    uri = settings.s3_uri("models", name, f"v{version}")
    shutil.copytree(model_dir, local_path(uri, settings), dirs_exist_ok=True)
    model_name = config_name = f"{name}-v{version}"
    sm.create_model(ModelName=model_name, ExecutionRoleArn=settings.effective_role_arn,
                    PrimaryContainer={"Image": "local/forecasting", "ModelDataUrl": uri})
    tags = [{"Key": "model-package-arn", "Value": package_arn(version)}]
    sm.create_endpoint_config(EndpointConfigName=config_name, Tags=tags, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": model_name, "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large"}])
    try:
        sm.describe_endpoint(EndpointName=name)
    except ClientError:   # not there yet: create it
        sm.create_endpoint(EndpointName=name, EndpointConfigName=config_name, Tags=tags)
    else:
        arn = sm.update_endpoint(EndpointName=name, EndpointConfigName=config_name)["EndpointArn"]
        sm.add_tags(ResourceArn=arn, Tags=tags)
    return sm.describe_endpoint(EndpointName=name)
