"""Seed 000's rest_model_service configuration runs unchanged on the real `sealserve serve` process.

rest_model_service 0.6 lists models as `qualified_name`, `class_path` and `create_endpoint`; the same file,
with the class written against sealserve's MLModel, must serve `/api/models/{qualified_name}/prediction`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sealserve.errors import ConfigError
from sealserve.serve.config import ClassSource, load_config
from sealserve.serve.contract import openapi_for_config
from sealserve.serve.lifecycle.loading import construct_class_model
from tests.support.seed_model import GeneralHealth, RiskInput, ThresholdRiskModel
from tests.support.server import RunningServer, serve

ROOT = Path(__file__).resolve().parents[2]
SEED_CONFIG = """\
service_title: Threshold Risk Model Service
models:
  - qualified_name: threshold_risk
    class_path: tests.support.seed_model.ThresholdRiskModel
    create_endpoint: true
  - qualified_name: internal_risk
    class_path: tests.support.seed_port.InternalRiskModel
    create_endpoint: false
"""
RECORD = {"body_mass_index": 33, "general_health": "FAIR"}


@pytest.fixture(scope="module")
def seed_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "rest_config.yaml"
    path.write_text(SEED_CONFIG)
    return path


@pytest.fixture(scope="module")
def server(seed_config: Path) -> Iterator[RunningServer]:
    with serve(seed_config, seed_config.parent, env={"PYTHONPATH": str(ROOT)}) as running:
        yield running
        assert "Traceback" not in running.log(), running.log()


def test_the_seed_yaml_serves_a_prediction_at_the_qualified_name(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/api/models/threshold_risk/prediction", json=RECORD)
    assert response.status_code == 200, response.text
    expected = ThresholdRiskModel().predict(RiskInput(body_mass_index=33, general_health=GeneralHealth.FAIR))
    assert response.json() == {"model_name": "threshold_risk", "model_version": "0.1.0", "output": expected.model_dump(mode="json")}
    batch = httpx.post(f"{server.url}/api/models/threshold_risk/predictions", json=[RECORD, {**RECORD, "general_health": "POOR"}])
    assert batch.status_code == 200
    assert len(batch.json()["outputs"]) == 2


def test_the_service_title_and_the_models_endpoints_are_in_the_contract(server: RunningServer) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    assert document["info"]["title"] == "Threshold Risk Model Service"
    assert "/api/models/threshold_risk/prediction" in document["paths"]
    assert "/api/models/threshold_risk/predictions" in document["paths"]


def test_create_endpoint_false_loads_the_model_without_prediction_endpoints(server: RunningServer, seed_config: Path) -> None:
    with server.client() as client:
        assert client.get("/api/health/ready").status_code == 200  # the hidden model is loaded, so the service is ready
        listed = {model["name"]: model for model in client.get("/api/models").json()["models"]}
        assert listed["internal_risk"]["ready"] is True
        for path in ("prediction", "predictions"):
            refused = client.post(f"/api/models/internal_risk/{path}", json=RECORD if path == "prediction" else [RECORD])
            assert refused.status_code == 404
            assert refused.json()["error"]["code"] == "not_found"
            assert "create_endpoint: false" in refused.json()["error"]["message"]
        paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if "internal_risk" in path]
    offline = openapi_for_config(seed_config)  # `sealserve openapi` leaves it out as well
    assert "/api/models/threshold_risk/prediction" in offline["paths"]
    assert not [path for path in offline["paths"] if "internal_risk" in path]


def test_a_qualified_name_that_is_not_the_models_is_a_config_error_naming_both() -> None:
    source = ClassSource(class_path="tests.support.seed_model.ThresholdRiskModel", qualified_name="insurance_charges_model")
    with pytest.raises(ConfigError, match=r"'insurance_charges_model'.*'threshold_risk'"):
        construct_class_model(source)


def test_create_endpoint_false_needs_the_qualified_name(tmp_path: Path) -> None:
    config = tmp_path / "rest_config.yaml"
    config.write_text("models:\n  - class_path: tests.support.seed_model.ThresholdRiskModel\n    create_endpoint: false\n")
    with pytest.raises(ConfigError, match="qualified_name"):
        load_config(config)


def test_other_unknown_model_keys_are_still_refused(tmp_path: Path) -> None:
    config = tmp_path / "rest_config.yaml"
    config.write_text("models:\n  - qualified_nam: threshold_risk\n    class_path: tests.support.seed_model.ThresholdRiskModel\n")
    with pytest.raises(ConfigError, match="qualified_nam"):
        load_config(config)
