"""One real `sealserve serve` process for the protocol tests: real bundles, real clients, loopback only.

Models: `demo` (numbers, an integer, a category; class labels and probabilities; from the shared
test workspace), `sklearn-iris` (the examples/iris_v2 SVC, published by the example's own code) and
`threshold_risk` (a class-path model, to check protocols on custom models too) and `weather`
(seed 002's one-feature temperature model, for the Seldon example).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import sealserve
from tests.support.bundles import Workspace
from tests.support.server import RunningServer, free_port, serve

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "iris_v2"
MAX_BATCH = 20
DEMO_RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


def load_example(name: str) -> ModuleType:
    """A script of examples/iris_v2 as a module (the example folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"iris_v2_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Served:
    """The running server, its gRPC address and where its bundles came from."""

    server: RunningServer
    grpc: str
    workspace: Workspace
    iris_home: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def address(self) -> str:
        """host:port, as Triton's HTTP client takes it."""
        return self.server.url.removeprefix("http://")


def publish_weather(space: Workspace) -> None:
    """Seed 002's model: the weather state from one feature, the temperature (°F)."""
    temperature = np.linspace(0.0, 110.0, 221)
    state = np.digitize(temperature, [45.0, 75.0])
    bundle = sealserve.pack(
        LogisticRegression(max_iter=1000).fit(temperature.reshape(-1, 1), state),
        name="weather",
        version="1.0.0",
        private_key=space.key,
        out=space.root / "weather.zip",
        sample=pd.DataFrame({"temperature": temperature}),
        features={"temperature": {"minimum": -60.0, "maximum": 140.0, "description": "Air temperature (°F)."}},
        class_labels={0: "cold", 1: "mild", 2: "hot"},
    )
    space.store.push(bundle)
    space.store.promote("weather", "1.0.0", "production")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    space = Workspace.create(tmp_path_factory.mktemp("protocols"))
    space.publish("demo", "1.0.0")
    publish_weather(space)
    return space


@pytest.fixture(scope="session")
def iris_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("iris-home")
    load_example("publish").publish(home)
    return home


@dataclass(frozen=True)
class IrisServer:
    """examples/iris_v2/service.yaml served as its README says, with free ports."""

    server: RunningServer
    grpc_port: int

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def servers(workspace: Workspace, iris_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, IrisServer]]:
    """Both servers, started side by side (start-up is mostly imports and model loading)."""
    logs = tmp_path_factory.mktemp("server")
    config = workspace.config(
        logs / "service.yaml",
        {"name": "demo"},
        {"name": "sklearn-iris", "store_url": str(iris_home / "store"), "keyring": str(iris_home / "keyring.json")},
        {"class_path": "tests.support.seed_model.ThresholdRiskModel"},
        {"name": "weather"},
        limits={"max_batch_size": MAX_BATCH},
        protocols={"v2_repository": True},
    )
    main_grpc, iris_grpc = free_port(), free_port()
    search_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # the seed model, and the tree under test
    contexts = [
        serve(config, logs, env={"PYTHONPATH": search_path}, extra_args=("--grpc-port", str(main_grpc))),
        serve(EXAMPLE / "service.yaml", logs, env={"SEALSERVE_HOME": str(iris_home), "SEALSERVE_GRPC_PORT": str(iris_grpc)}),
    ]
    with ExitStack() as stack:
        with ThreadPoolExecutor(max_workers=len(contexts)) as pool:
            futures = [pool.submit(context.__enter__) for context in contexts]
        for context, future in zip(contexts, futures, strict=True):
            if future.exception() is None:
                stack.push(context.__exit__)
        main, iris = (future.result() for future in futures)
        yield Served(main, f"127.0.0.1:{main_grpc}", workspace, iris_home), IrisServer(iris, iris_grpc)
        for server in (main, iris):
            assert "Traceback" not in server.log(), server.log()


@pytest.fixture(scope="session")
def served(servers: tuple[Served, IrisServer]) -> Served:
    return servers[0]


@pytest.fixture(scope="session")
def iris_server(servers: tuple[Served, IrisServer]) -> IrisServer:
    return servers[1]


@pytest.fixture
def http(served: Served) -> Iterator[httpx.Client]:
    with served.server.client() as client:
        yield client
