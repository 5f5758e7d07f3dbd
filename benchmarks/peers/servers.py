"""The servers under test, each started as its own process group on 127.0.0.1 and always stopped.

Each peer turns a BenchModel into a launch (command line, environment, readiness path) and the
endpoints to load, with their request bodies. Cold start is the time from `Popen` to the first 200
from the readiness path.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import orjson
import yaml

from peers.envs import Env
from peers.models import BATCH_RECORDS, BenchModel

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
READY_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Endpoint:
    api: str
    path: str  # HTTP path; empty for gRPC
    body: bytes  # one record (for gRPC: a serialized ModelInferRequest)
    batch_path: str | None = None  # where the BATCH_RECORDS request goes; None: no batch API
    batch_body: bytes = b""
    grpc: bool = False
    batch_only: bool = False  # the same route as another endpoint in another batch shape: no single-record load
    batch_headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    ready_path: str
    env: dict[str, str] = field(default_factory=dict)
    also_ready: tuple[str, ...] = ()  # paths that must answer 200 too (after ready_path) before the server counts as ready


class Peer(Protocol):
    name: str

    def launch(self, model: BenchModel, work: Path, port: int, grpc_port: int) -> Launch: ...

    def endpoints(self, model: BenchModel) -> list[Endpoint]: ...


ARROW_STREAM = "application/vnd.apache.arrow.stream"


def arrow_stream(records: list[dict[str, Any]]) -> bytes:
    """The batch as one Arrow IPC stream (sealserve's native batch route takes it; answers in Arrow on Accept)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    table = pa.Table.from_pylist(records)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def native_bodies(model: BenchModel) -> tuple[bytes, bytes]:
    return orjson.dumps(model.record), orjson.dumps(model.batch)


def v2_body(model: BenchModel, records: list[dict[str, Any]]) -> bytes:
    """One [N, F] FP64 tensor named input-0, features in model order (what KServe's examples send)."""
    rows = model.rows(records)
    tensor = {"name": "input-0", "shape": [len(rows), len(model.features)], "datatype": "FP64", "data": [v for r in rows for v in r]}
    return orjson.dumps({"inputs": [tensor]})


def grpc_request(model: BenchModel, records: list[dict[str, Any]]) -> bytes:
    """The same tensor as a ModelInferRequest with typed fp64_contents (what both servers read)."""
    from tritonclient.grpc import service_pb2

    rows = np.asarray(model.rows(records), dtype=np.float64)
    request = service_pb2.ModelInferRequest(model_name=model.name)
    tensor = request.inputs.add(name="input-0", datatype="FP64", shape=list(rows.shape))
    tensor.contents.fp64_contents.extend(rows.ravel().tolist())
    return bytes(request.SerializeToString())


def v2_endpoints(model: BenchModel) -> list[Endpoint]:
    path = f"/v2/models/{model.name}/infer"
    return [
        Endpoint("V2 REST", path, v2_body(model, [model.record]), path, v2_body(model, model.batch)),
        Endpoint("V2 gRPC", "", grpc_request(model, [model.record]), "", grpc_request(model, model.batch), grpc=True),
    ]


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    inherited = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    return {**inherited, **extra}


class Sealserve:
    """`observe`: metrics, access log and drift as configured by default; without it all three are off."""

    def __init__(self, workers: int = 1, observe: bool = True) -> None:
        self.workers, self.observe = workers, observe
        self.name = ("sealserve" if workers == 1 else f"sealserve-{workers}w") + ("" if observe else "-quiet")

    def launch(self, model: BenchModel, work: Path, port: int, grpc_port: int) -> Launch:
        config = work / f"{self.name}-{model.name}.yaml"
        service = {
            "service_title": "sealserve benchmark",
            # raised so one request can carry the 10,000-record batch; every other setting is the default
            "limits": {"max_body_bytes": 64 << 20, "max_batch_size": BATCH_RECORDS},
            "protocols": {"grpc_port": grpc_port},  # the config's port is shared by every worker
            **({} if self.observe else {"observability": {"metrics": False, "access_log": False, "drift": {"enabled": False}}}),
            "models": [{"name": model.name, "store_url": model.store_url, "keyring": str(model.keyring), "ref": "production"}],
        }
        config.write_text(yaml.safe_dump(service))
        argv = [str(VENV_BIN / "sealserve"), "serve", str(config), "--host", HOST, "--port", str(port), "--workers", str(self.workers)]
        return Launch(argv, "/api/health/ready", {"PYTHONPATH": str(ROOT / "src")})  # this tree's sealserve, whichever venv runs it

    def endpoints(self, model: BenchModel) -> list[Endpoint]:
        one, many = native_bodies(model)
        batch = f"/api/models/{model.name}/predictions"
        native = Endpoint("native", f"/api/models/{model.name}/prediction", one, batch, many)
        names = list(model.features)
        split = orjson.dumps({"dataframe_split": {"columns": names, "data": [[record[name] for name in names] for record in model.batch]}})
        arrow = {"Content-Type": ARROW_STREAM, "Accept": ARROW_STREAM}
        return [
            native,
            Endpoint("native dataframe_split", batch, b"", batch, split, batch_only=True),
            Endpoint("native Arrow", batch, b"", batch, arrow_stream(model.batch), batch_only=True, batch_headers=arrow),
            *v2_endpoints(model),
        ]


class Floor:
    """Raw ASGI + orjson + onnxruntime under uvicorn, with the options `sealserve serve` gives uvicorn."""

    name = "floor"

    def launch(self, model: BenchModel, work: Path, port: int, grpc_port: int) -> Launch:
        argv = [str(VENV_BIN / "python"), "-m", "uvicorn", "peers.floor_app:app", "--app-dir", str(ROOT / "benchmarks")]
        argv += ["--host", HOST, "--port", str(port), "--workers", "1", "--log-level", "info", "--no-access-log"]
        env = {"FLOOR_MODEL": str(model.onnx_path), "FLOOR_FEATURES": ",".join(model.features)}
        return Launch(argv, "/", env)

    def endpoints(self, model: BenchModel) -> list[Endpoint]:
        one, many = native_bodies(model)
        return [Endpoint("JSON", "/predict", one, "/predict", many)]


def granian_argv(env: Env, target: str, port: int, *, factory: bool = False) -> list[str]:
    """Granian serving an ASGI app on one worker with its uvloop, as `sealserve serve` gives uvicorn httptools + uvloop."""
    argv = [str(env.bin / "granian"), "--interface", "asgi", "--host", HOST, "--port", str(port), "--workers", "1"]
    return [*argv, "--loop", "uvloop", "--no-ws", "--log-level", "warning", *(["--factory"] if factory else []), target]


class FloorGranian(Floor):
    """The floor app under granian instead of uvicorn: what the transport alone is worth."""

    name = "floor-granian"

    def __init__(self, env: Env) -> None:
        self.env = env

    def launch(self, model: BenchModel, work: Path, port: int, grpc_port: int) -> Launch:
        env = {"FLOOR_MODEL": str(model.onnx_path), "FLOOR_FEATURES": ",".join(model.features), "PYTHONPATH": str(ROOT / "benchmarks")}
        return Launch(granian_argv(self.env, "peers.floor_app:app", port), "/", env)


class SealserveGranian(Sealserve):
    """sealserve's app, default configuration, under granian (its lifespan starts the gRPC port as under uvicorn);
    uvicorn-only behaviour (header and body timeouts, the 413 drain, the access line's transport fields) is absent."""

    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env, self.name = env, "sealserve-granian"

    def launch(self, model: BenchModel, work: Path, port: int, grpc_port: int) -> Launch:
        config = Path(super().launch(model, work, port, grpc_port).argv[2])
        site = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
        path = os.pathsep.join([str(ROOT / "src"), str(ROOT / "benchmarks"), str(site)])
        env = {"PYTHONPATH": path, "SEALSERVE_BENCH_CONFIG": str(config)}
        return Launch(granian_argv(self.env, "peers.granian_app:app", port, factory=True), "/api/health/ready", env)


class MLServer:
    name = "MLServer"

    def __init__(self, env: Env) -> None:
        self.env = env

    def launch(self, model: BenchModel, work: Path, port: int, grpc_port: int) -> Launch:
        repository = work / f"mlserver-{model.name}"
        shutil.rmtree(repository, ignore_errors=True)
        (repository / model.name).mkdir(parents=True)
        settings = {"debug": False, "host": HOST, "http_port": port, "grpc_port": grpc_port, "metrics_port": free_port()}
        (repository / "settings.json").write_text(orjson.dumps(settings).decode())
        model_settings = {
            "name": model.name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(model.joblib_path), "version": "1.0.0"},
        }
        (repository / model.name / "model-settings.json").write_text(orjson.dumps(model_settings).decode())
        argv = [str(self.env.bin / "mlserver"), "start", str(repository)]
        return Launch(argv, f"/v2/models/{model.name}/ready")

    def endpoints(self, model: BenchModel) -> list[Endpoint]:
        return v2_endpoints(model)


class RestModelService:
    name = "rest_model_service"

    def __init__(self, env: Env) -> None:
        self.env = env
        self.app_dir = env.path / "app"
        self.app_dir.mkdir(exist_ok=True)
        shutil.copyfile(Path(__file__).with_name("rms_model.py"), self.app_dir / "rms_model.py")

    def launch(self, model: BenchModel, work: Path, port: int, grpc_port: int) -> Launch:
        config = work / f"rest_model_service-{model.name}.yaml"
        configuration = {
            "name": model.name,
            "model_path": str(model.joblib_path),
            "features": list(model.features),
            "integers": sorted(model.integers),
        }
        entry = {"class_path": "rms_model.JoblibClassifier", "create_endpoint": True, "configuration": configuration}
        config.write_text(yaml.safe_dump({"service_title": "rest_model_service benchmark", "models": [entry]}))
        argv = [str(self.env.python), "-m", "uvicorn", "rest_model_service.main:app", "--app-dir", str(self.app_dir)]
        argv += ["--host", HOST, "--port", str(port), "--workers", "1", "--log-level", "info", "--no-access-log"]
        return Launch(argv, "/api/health/ready", {"REST_CONFIG": str(config)})

    def endpoints(self, model: BenchModel) -> list[Endpoint]:
        one, _ = native_bodies(model)
        return [Endpoint("native", f"/api/models/{model.name}/prediction", one)]


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    url: str
    grpc_target: str
    cold_start: float
    log_path: Path


class Supervisor:
    """Owns every child process group; `stop_all` ends whatever is still running (also on errors and Ctrl-C)."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=_child_env(env or {}), start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        if process.poll() is None:
            self._signal(process, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        self._signal(process, signal.SIGKILL)  # whatever the group left behind (worker processes)
        if process.poll() is None:
            process.wait(timeout=10)
        if process in self.processes:
            self.processes.remove(process)

    def stop_all(self) -> None:
        for process in list(self.processes):
            self.stop(process, grace=5.0)

    @staticmethod
    def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)  # start_new_session: the group id is the child's pid

    @contextmanager
    def serve(self, launch: Launch, log_path: Path, port: int, grpc_port: int) -> Iterator[Running]:
        url = f"http://{HOST}:{port}"
        start = time.perf_counter()
        process = self.spawn(launch.argv, log_path, launch.env)
        try:
            paths = (launch.ready_path, *launch.also_ready)
            cold_start = _wait_ready(process, [url + path for path in paths], log_path) - start
            yield Running(process, url, f"{HOST}:{grpc_port}", cold_start, log_path)
        finally:
            self.stop(process)


def _wait_ready(process: subprocess.Popen[bytes], urls: list[str], log_path: Path) -> float:
    """When each of `urls` has answered 200, in turn (one client: a new one per poll costs ~45 ms of CPU)."""
    deadline = time.perf_counter() + READY_TIMEOUT
    waiting = list(urls)
    with httpx.Client(timeout=1.0) as client:
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-8:]
                raise RuntimeError(f"exited with status {process.returncode} before ready: " + " | ".join(tail))
            try:
                while waiting and client.get(waiting[0]).status_code == 200:
                    waiting.pop(0)
                if not waiting:
                    return time.perf_counter()
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise RuntimeError(f"not ready within {READY_TIMEOUT:.0f}s ({waiting[0]})")
