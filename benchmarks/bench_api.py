"""Load benchmark of the local real-time forecast API: 1 client, then 8, for S seconds each, on loopback.

    python benchmarks/bench_api.py                    # reuse FORECAST_HOME's running endpoint, else build one
    python benchmarks/bench_api.py --build            # always build: seed data -> PrepareData -> engine -> endpoint
    python benchmarks/bench_api.py --seconds 30 [--clients 1,8] [--workers W] [--model-dir M --data D]

Each client loops POST /forecast {"item_id": <random seed item>, "covariates": {"promotion":
<random 0/1 plan>}} against `python -m deploy.api serve` (a separate process, as users run it),
which looks up the item's real history and calls the endpoint (its worker processes). The
random promotion plans make (almost) every request new, so the runs measure model work, not the
caches; a last short run repeats one request to show the cached cost. Prints throughput and
p50/p99 latency per client count and the 8-vs-1 scaling; exits 1 on any error.
Building trains the engine's --preset (default: "default", what the pipeline trains) on the seed
recipe's data (125 items x 3 years, horizon 14) within --train-seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy import endpoint  # noqa: E402
from processing.kernel.settings import resolve  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build(
    home: Path, train_seconds: float, model_dir: str | None, data: str | None, preset: str = "default"
) -> tuple[Path, str]:
    """Seed data -> PrepareData (in the local store, as the pipeline writes it) -> engine model."""
    from pipelines.local.store import local_path

    settings = resolve({"home": str(home)})
    prepared = local_path(settings.s3_uri("executions", "bench", "PrepareData"), settings)
    if data:
        shutil.copytree(data, prepared)
    else:
        raw = home / "seed.csv"
        print("generating the seed recipe's sales data ...", flush=True)
        subprocess.run([sys.executable, "-m", "processing.generate", "--out", str(raw)], check=True, cwd=ROOT)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "processing.prepare",
                "--input",
                str(raw),
                "--output-dir",
                str(prepared),
                "--horizon",
                "14",
                "--frequency",
                "D",
            ],
            check=True,
            cwd=ROOT,
        )
    if model_dir:
        return Path(model_dir), str(prepared)
    from forecasting import EngineConfig, train

    print(f"training the engine ({preset} preset, {train_seconds:.0f}s limit) ...", flush=True)
    profile = json.loads((prepared / "profile" / "profile.json").read_text())
    config = EngineConfig(horizon=int(profile["horizon"]), frequency=profile["frequency"], preset=preset)
    result = train(
        prepared / "train" / "train.csv",
        config,
        home / "training",
        time_limit_seconds=train_seconds,
        log=lambda line: None,
    )
    print(f"trained {result.best_candidate_name} ({result.objective_metric} {result.objective_value:.4f})", flush=True)
    return Path(result.model_dir), str(prepared)


def deploy_local(home: Path, model_dir: Path, workers: int | None) -> Any:
    """Deploy as approving a version does: CreateModel -> CreateEndpointConfig -> CreateEndpoint, locally."""
    from deploy.clients import client
    from pipelines.local.store import local_path

    settings = resolve({"home": str(home), "endpoint_port": free_port()}).replace(endpoint_workers=workers)
    sm = client("sagemaker", settings)
    uri = settings.s3_uri("models", "bench")
    shutil.copytree(model_dir, local_path(uri, settings))
    sm.create_model(
        ModelName="bench",
        ExecutionRoleArn=settings.effective_role_arn,
        PrimaryContainer={"Image": "local/forecasting", "ModelDataUrl": uri},
    )
    sm.create_endpoint_config(
        EndpointConfigName="bench",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "bench",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
    described = sm.describe_endpoint(EndpointName="bench")
    if described["EndpointStatus"] != "InService":
        raise SystemExit(f"the endpoint did not start: {described.get('FailureReason')}")
    return sm


def run_load(
    url: str,
    items: list[str],
    clients: int,
    seconds: float,
    seed: int = 0,
    covariates: tuple = (),
    horizon: int = 0,
    repeat: bool = False,
) -> dict:
    """`clients` threads posting single-item requests until `seconds` pass; latencies and failures.

    Each request carries a random 0/1 plan for the first covariate (new requests), unless `repeat`.
    """
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        rng = random.Random(seed + index)
        while time.monotonic() < deadline:
            request: dict = {"item_id": items[0] if repeat else rng.choice(items)}
            if covariates and not repeat:
                request["covariates"] = {covariates[0]: [rng.randint(0, 1) for _ in range(horizon)]}
            body = json.dumps(request).encode()
            started = time.perf_counter()
            try:
                status, _, answer = endpoint.http_request(
                    url + "/forecast", "POST", body, {"Content-Type": "application/json"}, timeout=30
                )
            except OSError as error:
                status, answer = 0, str(error).encode()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if status != 200:
                    failures.append(f"{status}: {answer[:200]!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)  # bounded even if a request hangs
    wall = time.perf_counter() - started
    values = np.array(latencies) * 1000.0
    return {
        "requests": len(latencies),
        "errors": len(failures),
        "first_errors": failures[:5],
        "seconds": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 2),
        "latency_ms": {f"p{q}": round(float(np.percentile(values, q)), 1) for q in (50, 90, 99)}
        | {"max": round(float(values.max()), 1)}
        if values.size
        else {},
    }


def main(argv: list[str] | None = None) -> int:
    from processing.kernel.process_env import configure_threads

    configure_threads()  # before LightGBM loads OpenMP in this process
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,8", help="client counts to run one after the other (default 1,8)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per client count (default 30)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="endpoint worker processes when building (default: the number of cores)",
    )
    parser.add_argument("--build", action="store_true", help="build a fresh deployment in a temporary home")
    parser.add_argument("--model-dir", default=None, help="with --build: serve this trained model")
    parser.add_argument("--data", default=None, help="with --build: a PrepareData output folder to serve")
    parser.add_argument("--train-seconds", type=float, default=150.0)
    parser.add_argument("--preset", default="default", help="engine preset when building (default: default)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home (prints its path)")
    args = parser.parse_args(argv)

    settings = resolve()
    reuse = (
        not args.build
        and not args.model_dir
        and endpoint.running_state(settings.home_path, settings.endpoint_name) is not None
    )
    home = settings.home_path if reuse else Path(tempfile.mkdtemp(prefix="bench-api-"))
    started_endpoint, api_process, sm = False, None, None
    try:
        if reuse:
            print(f"reusing the running endpoint {settings.endpoint_name!r} and the latest data in {home}")
            data_args: list[str] = []
        else:
            model_dir, prepared = build(home, args.train_seconds, args.model_dir, args.data, args.preset)
            sm = deploy_local(home, model_dir, args.workers)
            started_endpoint = True
            print(f"endpoint 'bench' on {endpoint.running_state(home, 'bench')['url']} serving {model_dir}")
            data_args = ["--endpoint-name", "bench", "--data", prepared]
        port = free_port()
        api_process = subprocess.Popen(
            [sys.executable, "-m", "deploy.api", "serve", "--port", str(port), "--home", str(home), *data_args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        api_process.stdout.readline()  # the "forecast API on ..." line: it is listening
        url = f"http://127.0.0.1:{port}"
        items, covariates, horizon = discover_items(url, home, data_args)
        warm = endpoint.http_request(url + "/forecast", "POST", json.dumps({"item_id": items[0]}).encode())
        if warm[0] != 200:
            print(f"warm-up request failed ({warm[0]}): {warm[2][:300]!r}")
            return 1
        endpoint_name = "bench" if started_endpoint else settings.endpoint_name
        state = endpoint.running_state(home, endpoint_name)
        workers = json.loads(endpoint.http_request(state["url"] + "/metrics")[2]).get("workers") if state else "?"
        results = {}
        for clients in [int(c) for c in str(args.clients).split(",") if c.strip()]:
            print(
                f"{clients} client(s) x {args.seconds:.0f}s, new single-item requests over {len(items)} items, "
                f"{workers} endpoint worker(s) ...",
                flush=True,
            )
            results[clients] = run_load(url, items, clients, args.seconds, covariates=covariates, horizon=horizon)
        cached = run_load(url, items, 1, min(args.seconds, 3.0), repeat=True)
        print(json.dumps({"runs": results, "repeated_request": cached}, indent=2))
        print(f"\n{'clients':>7} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for clients, result in results.items():
            latency = result["latency_ms"]
            print(
                f"{clients:>7} {result['requests']:>9} {result['errors']:>7} {result['throughput_rps']:>8} "
                f"{latency.get('p50', '-'):>8} {latency.get('p99', '-'):>8}"
            )
        counts = sorted(results)
        if len(counts) > 1 and results[counts[0]]["throughput_rps"]:
            ratio = results[counts[-1]]["throughput_rps"] / results[counts[0]]["throughput_rps"]
            print(
                f"throughput with {counts[-1]} clients = {ratio:.2f}x that with {counts[0]} "
                f"({os.cpu_count()} cores, {workers} endpoint workers)"
            )
        print(
            f"a repeated request (cached): p50 {cached['latency_ms'].get('p50')} ms, "
            f"{cached['throughput_rps']} req/s with 1 client"
        )
        failed = any(r["errors"] or not r["requests"] for r in [*results.values(), cached])
        return 1 if failed else 0
    finally:
        if api_process is not None:
            api_process.terminate()
            api_process.wait(timeout=10)
        if started_endpoint:
            sm.delete_endpoint(EndpointName="bench")
        if not reuse and not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        elif not reuse:
            print(f"kept {home}")


def discover_items(url: str, home: Path, data_args: list[str]) -> tuple[list[str], tuple, int]:
    """(item ids, covariate columns, horizon) the API serves (read the same way the API does)."""
    from deploy.api import ForecastApi

    settings = resolve({"home": str(home)})
    data_uri = data_args[data_args.index("--data") + 1] if "--data" in data_args else None
    data = ForecastApi(settings, data_uri=data_uri).data()
    return sorted(data.by_item), tuple(data.columns.get("covariates") or ()), data.horizon


if __name__ == "__main__":
    sys.exit(main())
