"""sealserve side by side with its peers: the same models, the same load, the same machine.

    .venv/bin/python benchmarks/compare.py [--rounds 3] [--seconds 10] [--quick] [--profile]

Builds (once, reused after) throwaway environments under .sealserve/bench-envs/ for MLServer 1.7 +
mlserver-sklearn and for rest_model_service 0.6 + ml-base, installs wrk (Debian) when missing, trains two
models (a 21-feature GradientBoostingClassifier pipeline and the diabetes example's LogisticRegression
pipeline), then serves each model from each server on a free 127.0.0.1 port, one server at a time:

- sealserve (default pack, skops): native API, V2 REST and V2 gRPC (`--grpc-port`); the native batch route's
  `dataframe_split` and Arrow shapes too (batch only: "native dataframe_split", "native Arrow", answered in Arrow);
- floor: a raw ASGI app (orjson + onnxruntime on the skl2onnx model, no validation) under uvicorn;
- MLServer (mlserver_sklearn.SKLearnModel on the joblib file): V2 REST and V2 gRPC;
- rest_model_service (an ml_base MLModel wrapping the joblib file): its native API.

Per server and API, in interleaved rounds (every server once, then again): cold start (process start
to the first 200 from readiness), p50/p99 latency at 1 connection, requests/s at 8 and 64 connections
(wrk; a threaded Python client for gRPC), and records/s for a 10,000-record batch request (a bounded
httpx/grpc loop). After each round, cold start with ten models (peers/ten_models.py: ten signed copies of the
diabetes model in one process), for sealserve with the trial prediction on and off and for MLServer when it runs.
Prints medians of the rounds and sealserve's ratios against the floor, MLServer and
rest_model_service; raw numbers go to .sealserve/bench-envs/results/. Before each server starts, the
share of CPU used by other processes is sampled (waiting up to 15 s, 3 s with --quick, for it to drop);
the "other load" column and a warning say when the machine was not quiet. With --profile, py-spy records
sealserve under load and the top frames are printed. Every server is stopped at the end, also on errors
and Ctrl-C; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import statistics
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import FrameType

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers import envs, load, machine, ten_models  # noqa: E402
from peers.models import BATCH_RECORDS, BenchModel, train_all  # noqa: E402
from peers.servers import (  # noqa: E402
    Endpoint,
    Floor,
    FloorGranian,
    Launch,
    MLServer,
    Peer,
    RestModelService,
    Running,
    Sealserve,
    SealserveGranian,
    Supervisor,
    free_port,
)

CONNECTIONS = (1, 8, 64)
METRICS = {  # key: (column title, higher is better)
    "cold_s": ("cold start s", False),
    "p50_ms": ("p50 ms @1", False),
    "p99_ms": ("p99 ms @1", False),
    "rps_8": ("req/s @8", True),
    "rps_64": ("req/s @64", True),
    "batch_rps": (f"{BATCH_RECORDS // 1000}k batch rec/s", True),
}
# (sealserve API, peer, peer API) pairs of the ratio table
COMPARISONS = [
    (api, peer, peer_api)
    for api in ("native", "V2 REST")
    for peer, peer_api in (("floor", "JSON"), ("MLServer", "V2 REST"), ("rest_model_service", "native"))
]
GRPC_COMPARISONS = [("V2 gRPC", "MLServer", "V2 gRPC")]
TWO_WORKERS = "sealserve-2w"  # the same server with --workers 2, compared with one worker
QUIET = "sealserve-quiet"  # metrics, access log and drift off: what observing costs


@dataclass(frozen=True)
class Settings:
    rounds: int
    seconds: float
    warmup: float
    batches: int
    settle: float
    cache: Path
    servers: tuple[str, ...]
    profile: bool


Key = tuple[str, str, str]  # model, server, API


class Results:
    def __init__(self) -> None:
        self.values: dict[Key, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.errors: dict[Key, int] = defaultdict(int)
        self.error_detail: dict[Key, list[str]] = defaultdict(list)
        self.failures: list[str] = []
        self.samples: dict[Key, str] = {}
        self.busy: dict[tuple[str, str], list[float]] = defaultdict(list)  # (model, server): other work before each start
        self.ten: dict[str, list[float]] = defaultdict(list)  # server: cold start with ten models, per round

    def add(self, key: Key, metric: str, value: float) -> None:
        self.values[key][metric].append(value)

    def median(self, key: Key, metric: str) -> float:
        values = self.values.get(key, {}).get(metric, [])
        return statistics.median(values) if values else math.nan

    def fail(self, what: str, why: str) -> None:
        line = f"{what}: {why}"
        self.failures.append(line)
        print(f"    FAILED {line}", flush=True)


def measure(
    settings: Settings, run: Callable[[int, float], load.Measure] | None, batch: Callable[[], float] | None, problems: list[str]
) -> dict[str, float]:
    """Warm up, then latency at 1 connection and throughput at 8 and 64; then the batch. Failed requests are counted."""
    out: dict[str, float] = {}
    errors = 0
    if run is not None:
        run(8, settings.warmup)
        for connections in CONNECTIONS:
            measured = run(connections, settings.seconds)
            errors += measured.errors
            if measured.errors:
                problems.append(f"@{connections}: {measured.detail}")
            if connections == 1:
                out["p50_ms"], out["p99_ms"] = measured.p50_ms, measured.p99_ms
            else:
                out[f"rps_{connections}"] = measured.rps
    if batch is not None:
        out["batch_rps"] = batch()
    out["errors"] = errors
    return out


def measure_endpoint(
    settings: Settings, wrk: str | None, running: Running, endpoint: Endpoint, work: Path, problems: list[str]
) -> dict[str, float]:
    count = settings.batches
    if endpoint.grpc:
        target = running.grpc_target
        return measure(
            settings,
            lambda connections, seconds: load.grpc_load(target, endpoint.body, connections, seconds),
            lambda: load.grpc_batch(target, endpoint.batch_body, BATCH_RECORDS, count),
            problems,
        )
    url = running.url + endpoint.path
    script = load.lua_script(work / f"{abs(hash(endpoint.body))}.lua", endpoint.body)
    batch_url = None if endpoint.batch_path is None else running.url + endpoint.batch_path
    return measure(
        settings,
        None if wrk is None or endpoint.batch_only else lambda connections, seconds: load.wrk(wrk, url, script, connections, seconds),
        None
        if batch_url is None
        else lambda: load.http_batch(batch_url, endpoint.batch_body, BATCH_RECORDS, count, endpoint.batch_headers),
        problems,
    )


def first_answer(running: Running, endpoint: Endpoint) -> str:
    """One request before the load: it must succeed; its answer is kept to show what each server returns."""
    if endpoint.grpc:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = load.grpc_call(running.grpc_target, endpoint.body)
                return f"{len(answer)} bytes of ModelInferResponse"
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    if endpoint.batch_only:
        assert endpoint.batch_path is not None
        response = httpx.post(running.url + endpoint.batch_path, content=endpoint.batch_body, headers=endpoint.batch_headers, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"POST {endpoint.batch_path} answered {response.status_code}: {response.text[:300]}")
        return f"{len(response.content)} bytes of {response.headers.get('content-type')}"
    response = httpx.post(running.url + endpoint.path, content=endpoint.body, headers={"Content-Type": "application/json"}, timeout=10)
    if response.status_code != 200:
        raise RuntimeError(f"POST {endpoint.path} answered {response.status_code}: {response.text[:300]}")
    return response.text


def run_server(
    settings: Settings, supervisor: Supervisor, wrk: str | None, work: Path, peer: Peer, model: BenchModel, results: Results
) -> None:
    busy = machine.settle(settings.settle)
    results.busy[(model.name, peer.name)].append(busy)
    port, grpc_port = free_port(), free_port()
    launch = peer.launch(model, work, port, grpc_port)
    log_path = work / "logs" / f"{peer.name}-{model.name}.log"
    started = time.perf_counter()
    try:
        with supervisor.serve(launch, log_path, port, grpc_port) as running:
            flag = "  (machine busy with other work)" if busy > machine.BUSY else ""
            print(f"    {peer.name:18s} ready in {running.cold_start:6.2f}s; other load before start {busy:4.0%}{flag}", flush=True)
            for endpoint in peer.endpoints(model):
                key = (model.name, peer.name, endpoint.api)
                problems: list[str] = []
                try:
                    results.samples.setdefault(key, first_answer(running, endpoint)[:160])
                    measured = measure_endpoint(settings, wrk, running, endpoint, work, problems)
                except Exception as exc:
                    results.fail(f"{model.name} / {peer.name} {endpoint.api}", f"{type(exc).__name__}: {exc}")
                    continue
                results.add(key, "cold_s", running.cold_start)
                for metric, value in measured.items():
                    if metric == "errors":
                        results.errors[key] += int(value)
                    else:
                        results.add(key, metric, value)
                results.error_detail[key].extend(problems)
                print(f"      {endpoint.api:8s} {_summary(measured, problems)}", flush=True)
    except Exception as exc:
        results.fail(f"{model.name} / {peer.name}", f"{type(exc).__name__}: {exc} (log: {log_path})")
    finally:
        print(f"      ({time.perf_counter() - started:.0f}s)", flush=True)


def run_ten(supervisor: Supervisor, work: Path, models: ten_models.TenModels, mlserver: MLServer | None, results: Results) -> None:
    """Cold start with ten models: sealserve with the trial on and off, and MLServer when it is in the run."""
    launches: list[tuple[str, Callable[[int, int], Launch]]] = [
        ("sealserve, trial on", lambda port, _: ten_models.sealserve_launch(models, work, port, trial=True)),
        ("sealserve, trial off", lambda port, _: ten_models.sealserve_launch(models, work, port, trial=False)),
    ]
    if mlserver is not None:
        launches.append(("MLServer", lambda port, grpc_port: ten_models.mlserver_launch(models, mlserver.env, work, port, grpc_port)))
    for name, launch in launches:
        busy = machine.settle(3.0)
        port, grpc_port = free_port(), free_port()
        try:
            with supervisor.serve(launch(port, grpc_port), work / "logs" / f"ten-{name}.log", port, grpc_port) as running:
                results.ten[name].append(running.cold_start)
                print(f"    {ten_models.COPIES} models, {name:22s} ready in {running.cold_start:6.2f}s; other load {busy:4.0%}", flush=True)
        except Exception as exc:
            results.fail(f"{ten_models.COPIES} models / {name}", f"{type(exc).__name__}: {exc}")


def ten_table(results: Results) -> list[str]:
    if not results.ten:
        return []
    medians = {name: statistics.median(values) for name, values in results.ten.items()}
    off, mlserver = medians.get("sealserve, trial off", math.nan), medians.get("MLServer", math.nan)
    lines = [
        f"cold start to ready, {ten_models.COPIES} models ({ten_models.MODEL} copies, each its own signed bundle), one process:",
        "| server | cold start s | ÷ sealserve trial off | ÷ MLServer |",
        "|---|---|---|---|",
    ]
    for name, value in medians.items():
        lines.append(f"| {name} | {value:.2f} | {value / off:.2f}× | {value / mlserver:.2f}× |")
    return [*lines, ""]


def _summary(measured: dict[str, float], problems: list[str]) -> str:
    parts = [f"{METRICS[k][0]} {_fmt(k, v)}" for k, v in measured.items() if k in METRICS]
    if problems:
        parts.append(f"FAILED REQUESTS {'; '.join(problems)}")
    return ", ".join(parts)


def _fmt(metric: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if metric in ("cold_s",):
        return f"{value:.2f}"
    if metric.endswith("_ms"):
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return f"{value:,.0f}"


def _ratio(ours: float, theirs: float, higher_better: bool) -> str:
    if math.isnan(ours) or math.isnan(theirs) or ours <= 0 or theirs <= 0:
        return "–"
    return f"{(ours / theirs if higher_better else theirs / ours):.2f}×"


def other_load(results: Results) -> str:
    shares = [share for values in results.busy.values() for share in values if not math.isnan(share)]
    if not shares:
        return "other load: not measured"
    line = (
        f"other load (share of all CPUs used by other processes in the 0.5 s before each server start): "
        f"median {statistics.median(shares):.0%}, max {max(shares):.0%}"
    )
    if max(shares) > machine.BUSY:
        line += " — WARNING: the machine was busy with other work; rerun on a quiet machine before quoting these numbers"
    return line


def print_tables(results: Results, models: list[BenchModel], header: list[str]) -> str:
    lines = [*header, ""]
    titles = [title for title, _ in METRICS.values()]

    def table(rows: list[list[str]], columns: list[str]) -> None:
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "|".join("---" for _ in columns) + "|")
        lines.extend("| " + " | ".join(row) + " |" for row in rows)
        lines.append("")

    for grpc in (False, True):
        rows = []
        for key in results.values:
            model, server, api = key
            if (api == "V2 gRPC") != grpc:
                continue
            busy = statistics.median(results.busy[(model, server)])
            cells = [_fmt(metric, results.median(key, metric)) for metric in METRICS]
            rows.append([model, server, api, *cells, str(results.errors.get(key, 0)), f"{busy:.0%}"])
        if grpc and rows:
            lines.append("V2 gRPC, driven by a threaded Python client in the benchmark process (1/8/64 threads, one channel):")
        if rows:
            table(rows, ["model", "server", "API", *titles, "failed requests", "other load"])
    rows = []
    for model in (m.name for m in models):
        pairs = [(("sealserve", api), (peer, peer_api)) for api, peer, peer_api in COMPARISONS + GRPC_COMPARISONS]
        pairs += [((TWO_WORKERS, api), ("sealserve", api)) for api in ("native", "V2 REST")]
        pairs += [(("sealserve", api), (QUIET, api)) for api in ("native", "V2 REST")]
        for (server, api), (peer, peer_api) in pairs:
            ours, theirs = (model, server, api), (model, peer, peer_api)
            if ours in results.values and theirs in results.values:
                rows.append(
                    [model, f"{server} {api}", f"{peer} {peer_api}"]
                    + [_ratio(results.median(ours, m), results.median(theirs, m), better) for m, (_, better) in METRICS.items()]
                )
    lines.extend(ten_table(results))
    if rows:
        lines.append("sealserve ÷ peer, as speed (>1×: sealserve ahead; latency and cold start inverted):")
        table(rows, ["model", "sealserve", "vs", *titles])
    for (model, server, api), problems in results.error_detail.items():
        if problems:
            lines.append(f"failed requests, {model} / {server} {api}: {'; '.join(problems)}")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def profile(settings: Settings, supervisor: Supervisor, wrk: str | None, work: Path, model: BenchModel) -> None:
    """py-spy (bench env) on sealserve's native endpoint under 8 connections: SVG + collapsed stacks; top frames."""
    tools = envs.ensure_env(settings.cache, envs.TOOLS)
    if isinstance(tools, str):
        print(f"  profile skipped: {tools}")
        return
    if wrk is None:
        print("  profile skipped: wrk is missing")
        return
    out = settings.cache / "profile"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    peer = Sealserve()
    port, grpc_port = free_port(), free_port()
    endpoint = peer.endpoints(model)[0]
    duration = 10
    with supervisor.serve(peer.launch(model, work, port, grpc_port), work / "logs" / "profile.log", port, grpc_port) as running:
        script = load.lua_script(work / "profile.lua", endpoint.body)
        load.wrk(wrk, running.url + endpoint.path, script, 8, settings.warmup)
        load_process = supervisor.spawn(
            [wrk, "-t2", "-c8", f"-d{duration + 4}s", "-s", str(script), running.url + endpoint.path], work / "logs" / "profile-wrk.log"
        )
        spy = [str(tools.bin / "py-spy"), "record", "--nonblocking", "--function", "--pid", str(running.process.pid)]
        spy += ["--duration", str(duration), "--rate", "200"]
        spies = [
            supervisor.spawn(
                [*spy, "--format", fmt, "--output", str(out / name)],
                work / "logs" / f"py-spy-{fmt}.log",
            )
            for fmt, name in (("flamegraph", "sealserve.svg"), ("raw", "sealserve.folded.txt"))
        ]
        for recorder in spies:
            recorder.wait(timeout=duration + 60)
        supervisor.stop(load_process)
    folded = out / "sealserve.folded.txt"
    if not folded.exists():
        print(f"  py-spy wrote nothing; see {work / 'logs'}/py-spy-raw.log")
        return
    print(f"  flame graph: {out / 'sealserve.svg'}; collapsed stacks: {folded}")
    for line in top_frames(folded):
        print(line)


def top_frames(folded: Path, count: int = 15) -> list[str]:
    own: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    samples = 0
    for line in folded.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = [_short(frame) for frame in stack.split(";")]
        weight = int(number)
        samples += weight
        own[frames[-1]] += weight
        for frame in set(frames):
            total[frame] += weight
    if not samples:
        return ["  no samples"]
    lines = [f"  top frames by own time ({samples} samples, {count} shown):"]
    lines += [f"    {n / samples:6.1%}  {frame}" for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:count]]
    lines.append("  sealserve's own functions by total time (self + callees):")
    ours = [(frame, n) for frame, n in total.items() if "sealserve/" in frame and "sealserve/cli/" not in frame]
    lines += [f"    {n / samples:6.1%}  {frame}" for frame, n in sorted(ours, key=lambda kv: -kv[1])[:count]]
    return lines


def _short(frame: str) -> str:
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in frame:
            head, _, tail = frame.partition("(")
            return f"{head}({tail.split(marker, 1)[-1]}"
    return frame


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported (default 3)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per load run (default 10)")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s runs: a smoke test of the whole pipeline")
    parser.add_argument("--profile", action="store_true", help="also record sealserve with py-spy under load (10 s)")
    parser.add_argument("--cache", type=Path, default=ROOT / ".sealserve" / "bench-envs", help="peer envs, work files, results")
    parser.add_argument(
        "--servers",
        default=f"sealserve,{QUIET},{TWO_WORKERS},floor,MLServer,rest_model_service",
        help="comma-separated subset (default: all)",
    )
    args = parser.parse_args(argv)
    rounds, seconds = (1, 3.0) if args.quick else (args.rounds, args.seconds)
    return Settings(
        rounds=rounds,
        seconds=seconds,
        warmup=1.0 if args.quick else 2.0,
        batches=2 if args.quick else 5,
        settle=3.0 if args.quick else 15.0,
        cache=args.cache.resolve(),
        servers=tuple(name.strip() for name in args.servers.split(",") if name.strip()),
        profile=args.profile,
    )


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    began = time.perf_counter()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (a background job)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    supervisor = Supervisor()
    results = Results()
    settings.cache.mkdir(parents=True, exist_ok=True)
    work = settings.cache / "run"
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    try:
        print("setting up (envs are reused when present) …", flush=True)
        envs.compile_sources()
        wrk = envs.ensure_wrk()
        if wrk is None:
            results.fail("wrk", "not installed: HTTP latency and throughput are skipped (batch and cold start still run)")
        peers: list[Peer] = []
        versions = {"sealserve": version("sealserve"), "uvicorn": version("uvicorn"), "onnxruntime": version("onnxruntime")}
        factories: dict[str, tuple[envs.EnvSpec | None, Callable[..., Peer]]] = {
            "sealserve": (None, Sealserve),
            TWO_WORKERS: (None, lambda: Sealserve(workers=2)),
            QUIET: (None, lambda: Sealserve(observe=False)),
            "floor": (None, Floor),
            "floor-granian": (envs.GRANIAN, FloorGranian),
            "sealserve-granian": (envs.GRANIAN, SealserveGranian),
            "MLServer": (envs.MLSERVER, MLServer),
            "rest_model_service": (envs.REST_MODEL_SERVICE, RestModelService),
        }
        for name in settings.servers:
            if name not in factories:
                results.fail(name, f"unknown server (choose from {', '.join(factories)})")
                continue
            spec, factory = factories[name]
            if spec is None:
                peers.append(factory())
                continue
            env = envs.ensure_env(settings.cache, spec)
            if isinstance(env, str):
                results.fail(name, env)
                continue
            versions.update(env.versions)
            peers.append(factory(env))
        print("training and packing the models …", flush=True)
        models = train_all(work / "models")
        ten = ten_models.publish(work / "ten") if "sealserve" in settings.servers else None
        mlserver = next((peer for peer in peers if isinstance(peer, MLServer)), None)
        for round_number in range(1, settings.rounds + 1):
            for model in models:
                print(f"round {round_number}/{settings.rounds}, {model.name}:", flush=True)
                for peer in peers:
                    run_server(settings, supervisor, wrk, work, peer, model, results)
            if ten is not None:
                print(f"round {round_number}/{settings.rounds}, {ten_models.COPIES} models:", flush=True)
                run_ten(supervisor, work, ten, mlserver, results)
        header = [
            "sealserve vs peers: " + ", ".join(f"{peer.name}" for peer in peers),
            *machine.description(),
            f"versions: {', '.join(f'{k} {v}' for k, v in versions.items())}, scikit-learn {envs.SKLEARN} everywhere; "
            f"sealserve commit {machine.git_state()}",
            f"load: wrk (-t1 at 1 connection, -t2 at 8 and 64), {settings.seconds:g} s per run after {settings.warmup:g} s warm-up; "
            f"batch: {settings.batches} sequential requests of {BATCH_RECORDS:,} records; medians of {settings.rounds} round(s)",
            "what each answers: sealserve native = validated record → class label + probabilities; floor = class + probabilities, "
            "no validation (onnxruntime); V2 REST/gRPC (sealserve and MLServer) = `predict` only; "
            "rest_model_service = validated record → class + probabilities",
            "processes: sealserve --workers 1; floor and rest_model_service: uvicorn, 1 worker; MLServer defaults "
            "(parallel_workers=1: an HTTP/gRPC process plus one inference process)",
            other_load(results),
        ]
        print()
        text = print_tables(results, models, header)
        if settings.profile:
            print("profile:", flush=True)
            profile(settings, supervisor, wrk, work, models[0])
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every server", flush=True)
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        supervisor.stop_all()
    elapsed = time.perf_counter() - began
    for line in results.failures:
        print(f"failed: {line}")
    saved = save(settings, results, text, elapsed)
    print(f"\nwhole run: {elapsed / 60:.1f} min; raw results: {saved}")
    return 0


def save(settings: Settings, results: Results, table: str, elapsed: float) -> Path:
    folder = settings.cache / "results"
    folder.mkdir(exist_ok=True)
    path = folder / f"compare-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    document = {
        "settings": {**asdict(settings), "cache": str(settings.cache)},
        "elapsed_s": elapsed,
        "values": [{"model": m, "server": s, "api": a, **values} for (m, s, a), values in results.values.items()],
        "failed_requests": [
            {"model": m, "server": s, "api": a, "count": n, "detail": results.error_detail[(m, s, a)]}
            for (m, s, a), n in results.errors.items()
        ],
        "cold_start_ten_models_s": results.ten,
        "failures": results.failures,
        "first_answers": [{"model": m, "server": s, "api": a, "body": body} for (m, s, a), body in results.samples.items()],
        "table": table,
    }
    path.write_text(json.dumps(document, indent=2, default=str))
    return path


if __name__ == "__main__":
    sys.exit(main())
