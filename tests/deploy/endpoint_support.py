"""Small synthetic sales, the PrepareData folder layout, and tiny engine models for endpoint/API tests."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import io
import itertools
import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import Callable

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
        rows.append(
            pd.DataFrame(
                {
                    "item_id": item,
                    "timestamp": stamps.strftime("%Y-%m-%d"),
                    "target_value": np.maximum(target, 0),
                    "promotion": promotion,
                    "day_of_week": stamps.dayofweek,
                    "category": "food" if item != "apple" else "fruit",
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def prepare(frame: pd.DataFrame, output_dir: Path, horizon: int = HORIZON, grouping: tuple = ()) -> Path:
    """Run the real PrepareData (processing.prepare) on `frame`; returns its output folder."""
    from processing.prepare import main

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    raw = output_dir.parent / f"{output_dir.name}-input.csv"
    frame.to_csv(raw, index=False)
    code = main(
        [
            "--input",
            str(raw),
            "--output-dir",
            str(output_dir),
            "--horizon",
            str(horizon),
            "--frequency",
            "D",
            f"--grouping-columns={','.join(grouping)}",
        ]
    )
    assert code == 0, f"PrepareData failed with exit code {code}"
    return output_dir


def engine_config(horizon: int = HORIZON, quantiles: tuple = QUANTILES, grouping: tuple = ()):
    from forecasting import EngineConfig

    return EngineConfig(
        horizon=horizon,
        frequency="D",
        quantiles=quantiles,
        grouping_columns=grouping,
        algorithms=("SeasonalNaive", "NPTS"),
        backtest_windows=1,
    )


def train_model(
    frame: pd.DataFrame, out_dir: Path, horizon: int = HORIZON, quantiles: tuple = QUANTILES, grouping: tuple = ()
) -> Path:
    """A tiny real engine model trained on all of `frame`; returns its model directory."""
    from forecasting import train

    result = train(
        frame, engine_config(horizon, quantiles, grouping), out_dir, time_limit_seconds=60, log=lambda *a, **k: None
    )
    return Path(result.model_dir)


def inference_csv(frame: pd.DataFrame, horizon: int = HORIZON) -> bytes:
    """Autopilot inference input: every item's history plus `horizon` future rows with an empty target."""
    parts = []
    for item, rows in frame.groupby("item_id"):
        last = pd.Timestamp(rows["timestamp"].iloc[-1])
        stamps = pd.date_range(last, periods=horizon + 1, freq="D")[1:]
        future = pd.DataFrame(
            {
                "item_id": item,
                "timestamp": stamps.strftime("%Y-%m-%d"),
                "target_value": np.nan,
                "promotion": 0,
                "day_of_week": stamps.dayofweek,
                "category": rows["category"].iloc[-1],
            }
        )
        parts += [rows, future]
    return pd.concat(parts, ignore_index=True).to_csv(index=False).encode()


def sparse_centuries(items: int) -> bytes:
    """Inference input whose items have two history rows 324 years apart: tiny body, huge daily grid."""
    rows = ["item_id,timestamp,target_value,promotion,day_of_week,category"]
    for k in range(items):
        rows += [f"i{k},1700-01-01,5,0,4,food", f"i{k},2024-03-24,6,0,6,food"]
        rows += [f"i{k},2024-03-{25 + d},,0,{d},food" for d in range(HORIZON)]
    return ("\n".join(rows) + "\n").encode()


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
    sm.create_model(
        ModelName=model_name,
        ExecutionRoleArn=settings.effective_role_arn,
        PrimaryContainer={"Image": "local/forecasting", "ModelDataUrl": uri},
    )
    tags = [{"Key": "model-package-arn", "Value": package_arn(version)}]
    sm.create_endpoint_config(
        EndpointConfigName=config_name,
        Tags=tags,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model_name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    try:
        sm.describe_endpoint(EndpointName=name)
    except ClientError:  # not there yet: create it
        sm.create_endpoint(EndpointName=name, EndpointConfigName=config_name, Tags=tags)
    else:
        arn = sm.update_endpoint(EndpointName=name, EndpointConfigName=config_name)["EndpointArn"]
        sm.add_tags(ResourceArn=arn, Tags=tags)
    return sm.describe_endpoint(EndpointName=name)


# --------------------------------------------------------------------------------------------
# Raw HTTP and the concurrent client pool (good and malformed requests at once)
# --------------------------------------------------------------------------------------------
def raw_exchange(url: str, data: bytes, timeout: float = 20.0, hang_up: bool = False) -> tuple:
    """Send raw bytes and read the whole answer: (status, headers, body); (None, {}, b"") after a hang-up.

    `hang_up` closes the connection right after sending (a client gone mid-body): nothing is read.
    """
    host, port = url.split("://")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        if hang_up:
            return None, {}, b""
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0]:
        raise ConnectionError("the server closed the connection without an answer")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def http_post(
    path: str,
    body: bytes,
    content_type: str = "application/json",
    version: str = "1.0",
    length: str | None = None,
    method: str = "POST",
) -> bytes:
    """A raw request: `length` overrides the Content-Length header (``""`` leaves it out)."""
    length = str(len(body)) if length is None else length
    header = f"Content-Length: {length}\r\n" if length != "" else ""
    return (
        f"{method} {path} HTTP/{version}\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{header}\r\n"
    ).encode("latin-1") + body


@dataclasses.dataclass(frozen=True)
class Probe:
    """One kind of request in a load: raw bytes, and what must come back.

    A good probe must get 200 and pass `check` (body, headers -> problem text or None); a bad one
    must get `status` (any 4xx when None) with a JSON {"error": ...} body (no body for HEAD); a
    `hang_up` probe sends a partial body and closes, so there is no answer to judge.
    """

    name: str
    data: bytes
    good: bool = False
    status: int | None = None
    hang_up: bool = False
    check: Callable[[bytes, dict], str | None] | None = None


@dataclasses.dataclass(frozen=True)
class Outcome:
    probe: str
    status: int | None
    seconds: float
    problem: str | None  # None: the answer is what the probe demands


def judge(probe: Probe, status: int | None, headers: dict, body: bytes) -> str | None:
    """What is wrong with this answer to `probe` (None when nothing)."""
    if probe.hang_up:
        return None
    if status is None or status >= 500:
        return f"server error {status}: {body[:200]!r}"
    if probe.good:
        if status != 200:
            return f"expected 200, got {status}: {body[:200]!r}"
        return probe.check(body, headers) if probe.check else None
    if not 400 <= status < 500 or (probe.status is not None and status != probe.status):
        return f"expected {probe.status or '4xx'}, got {status}: {body[:200]!r}"
    if headers.get("content-type", "").split(";")[0] != "application/json":
        return f"{status} with Content-Type {headers.get('content-type')!r}, not application/json"
    if probe.data.startswith(b"HEAD "):
        return None if not body else f"HEAD answered with a body {body[:80]!r}"
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return f"{status} without a JSON error: {body[:200]!r}"
    return None if isinstance(error, str) and error and "Traceback" not in error else f"bad error text {error!r}"


def run_clients(
    url: str, probes: list[Probe], *, clients: int = 8, seconds: float = 4.0, timeout: float = 30.0
) -> list[Outcome]:
    """`clients` threads send probes for `seconds`: every other request a good one, the bad ones in turn.

    The bad probes go round one shared cycle, so every kind is sent (each at least once when the
    run is long enough for one round). Every request has `timeout`: one that does not finish in it
    is a hang and an outcome with a problem. Returns every outcome; nothing is asserted here.
    """
    goods = [p for p in probes if p.good]
    bads = [p for p in probes if not p.good]
    turn = itertools.count()
    turn_lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def send(probe: Probe) -> Outcome:
        started = time.monotonic()
        try:
            status, headers, body = raw_exchange(url, probe.data, timeout=timeout, hang_up=probe.hang_up)
        except TimeoutError:
            return Outcome(probe.name, None, time.monotonic() - started, f"no answer within {timeout:g} s (a hang)")
        except OSError as error:
            return Outcome(probe.name, None, time.monotonic() - started, f"connection failed: {error!r}")
        return Outcome(probe.name, status, time.monotonic() - started, judge(probe, status, headers, body))

    def client(k: int) -> list[Outcome]:
        outcomes = []
        while time.monotonic() < deadline:
            with turn_lock:
                n = next(turn)
            if goods and (not bads or n % 2 == 0):
                outcomes.append(send(goods[(n // 2 + k) % len(goods)]))
            else:
                outcomes.append(send(bads[(n // 2) % len(bads)]))
        return outcomes

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, k) for k in range(clients)]
        return [o for future in futures for o in future.result(timeout=seconds + 2 * timeout + 60)]


def problems_of(outcomes: list[Outcome], probes: list[Probe]) -> list[str]:
    """Every outcome with a problem, every bad probe never sent, no good answer at all; [] when clean."""
    sent = collections.Counter(o.probe for o in outcomes)
    found = [f"{o.probe}: {o.problem}" for o in outcomes if o.problem]
    found += [f"{p.name}: never sent" for p in probes if not p.good and not sent[p.name]]
    if not any(sent[p.name] for p in probes if p.good):
        found.append("no good request was sent")
    return found


def forecast_csv_check(items: int, horizon: int = HORIZON):
    """A check for the endpoint's CSV answer: every item's horizon of rows, p10 <= p50 <= p90, mean inside."""

    def check(body: bytes, headers: dict) -> str | None:
        out = pd.read_csv(io.BytesIO(body))
        return coherence_problem(out.to_dict("records"), expected_rows=items * horizon)

    return check


def forecast_json_check(horizon: int):
    """A check for the API's JSON answer: `horizon` rows, p10 <= p50 <= p90, mean inside."""

    def check(body: bytes, headers: dict) -> str | None:
        return coherence_problem(json.loads(body)["forecast"], expected_rows=horizon)

    return check


def coherence_problem(rows: list[dict], expected_rows: int) -> str | None:
    if len(rows) != expected_rows:
        return f"{len(rows)} forecast rows, expected {expected_rows}"
    for row in rows:
        values = [row.get(k) for k in ("p10", "p50", "p90", "mean")]
        if any(not isinstance(v, (int, float)) or not np.isfinite(v) for v in values):
            return f"non-finite or missing forecast values in {row}"
        p10, p50, p90, mean = values
        if not (p10 <= p50 <= p90 and p10 <= mean <= p90):
            return f"incoherent forecast row {row}"
    return None


def summary(outcomes: list[Outcome]) -> str:
    """One line per probe kind: how many were sent, their statuses, the slowest (for the test's output)."""
    by_probe: dict = collections.defaultdict(list)
    for outcome in outcomes:
        by_probe[re.sub(r"-\d+$", "", outcome.probe)].append(outcome)
    lines = []
    for name, group in sorted(by_probe.items()):
        statuses = collections.Counter(o.status for o in group)
        lines.append(f"{name:24} {len(group):5}  {dict(statuses)}  slowest {max(o.seconds for o in group):.2f} s")
    return "\n".join(lines)
