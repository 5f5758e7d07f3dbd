"""Explanations in an in-process app (fast): `explain.load: eager`, a class model's 422, coded categories answered as
the labels the client sent, positional KServe instances, and the model page's importance cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from sealserve.runtime.explain.explainer import Explainer
from sealserve.serve import create_app, load_config
from sealserve.serve.request.explain.plane import EXPLAINER
from sealserve.serve.web.importance import CACHE_SECONDS, GlobalImportance
from tests.serve.conftest import record
from tests.support.bundles import Workspace
from tests.support.server import wait_until


@pytest.fixture(scope="module")
def app_client(workspace: Workspace) -> Iterator[TestClient]:
    config = workspace.config(
        workspace.root / "explain-service.yaml",
        {"name": "demo"},
        {"class_path": "tests.support.seed_model.ThresholdRiskModel", "configuration": {"threshold": 0.4}},
        explain={"load": "eager"},
    )
    app = create_app(load_config(config))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_until(lambda: client.get("/api/health/ready").status_code == 200, timeout=30)
        yield client


def test_eager_load_builds_the_explainer_as_the_model_loads(app_client: TestClient) -> None:
    served = app_client.app.state.registry.get("demo")  # type: ignore[attr-defined]
    assert isinstance(served.attachments.get(EXPLAINER), Explainer)
    detail = app_client.get("/api/models/demo").json()["explanation"]
    assert detail["method"] == "exact"


def test_coded_categories_are_answered_as_the_labels_sent(app_client: TestClient) -> None:
    response = app_client.post("/api/models/demo/explanation?top=3", json=record(color="GREEN"))
    assert response.status_code == 200, response.text
    answer = response.json()["explanation"]
    assert answer["method"] == "linear"
    assert {reason["feature"]: reason["value"] for reason in answer["top"]}["color"] == "GREEN"
    assert answer["explains"] in ("small", "large")


def test_positional_kserve_instances_are_explained(app_client: TestClient) -> None:
    named = app_client.post("/v1/models/demo:explain", json={"instances": [record()]}).json()["explanations"][0]
    positional = app_client.post("/v1/models/demo:explain", json={"instances": [[7.5, 3, "BLUE"]]}).json()["explanations"][0]
    assert named == positional


def test_a_class_model_is_not_explained(app_client: TestClient) -> None:
    body = {"body_mass_index": 40, "general_health": "GOOD"}
    assert app_client.post("/api/models/threshold_risk/prediction", json=body).status_code == 200  # live control
    response = app_client.post("/api/models/threshold_risk/explanation", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_explanation_method"
    assert "Python class model" in response.json()["error"]["message"]


def test_global_importance_is_recomputed_at_most_once_a_minute(app_client: TestClient) -> None:
    state = app_client.app.state  # type: ignore[attr-defined]
    assert app_client.post("/api/models/demo/predictions", json=[record(size=float(size)) for size in range(8)]).status_code == 200
    now = [1000.0]
    importance = GlobalImportance(state.explanations, state.drift, clock=lambda: now[0])
    served = state.registry.get("demo")
    served.attachments.pop("global_importance", None)
    first = importance.of(served)
    assert first is not None
    assert first.rows >= 8
    assert sorted(bar["name"] for bar in first.bars) == ["color", "count", "size"]
    now[0] += CACHE_SECONDS - 1
    assert importance.of(served) is first
    now[0] += 2
    assert importance.of(served) is not first
