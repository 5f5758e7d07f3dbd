"""An in-process app serving a bundle model and a seed-shaped class model (fast; the e2e tests use the real server)."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sealserve.serve import create_app, load_config
from tests.support.bundles import Workspace
from tests.support.server import wait_until


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    space = Workspace.create(tmp_path_factory.mktemp("workspace"))
    space.publish("demo", "1.0.0")
    return space


@pytest.fixture(scope="module")
def client(workspace: Workspace) -> Iterator[TestClient]:
    config = workspace.config(
        workspace.root / "service.yaml",
        {"name": "demo"},
        {"class_path": "tests.support.seed_model.ThresholdRiskModel", "configuration": {"threshold": 0.4}},
        limits={"max_body_bytes": 4096, "max_batch_size": 5},
    )
    app = create_app(load_config(config))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        wait_until(lambda: test_client.get("/api/health/ready").status_code == 200, timeout=30)
        yield test_client


def record(**changes: object) -> dict[str, object]:
    return {"size": 7.5, "count": 3, "color": "BLUE", **changes}
