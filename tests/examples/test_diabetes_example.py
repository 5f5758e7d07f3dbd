"""The README's main job, `make serve`: train the diabetes model, pack + sign it into the local store, serve it."""

import os
import signal
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
PATIENT = {"pregnancies": 2, "glucose": 148.0, "blood_pressure": 72.0, "skin_thickness": 35.0, "bmi": 33.6, "pedigree": 0.627, "age": 50}
HEALTHY = {"pregnancies": 1, "glucose": 85.0, "blood_pressure": 66.0, "skin_thickness": 29.0, "bmi": 22.6, "pedigree": 0.351, "age": 25}


@pytest.fixture(scope="module")
def make_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("sealserve-home")
    port = free_port()
    log = home / "make-serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "serve", f"SEALSERVE_HOME={home}", f"PORT={port}"],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "SEALSERVE_DRAIN_SECONDS": "0"},  # stopped below at once, as tests/support/server.py stops servers
        )
    url = f"http://127.0.0.1:{port}"

    def ready(probe: httpx.Client) -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"make serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            return probe.get(f"{url}/api/health/ready").status_code == 200
        except httpx.TransportError:
            return False

    try:
        with httpx.Client(timeout=1) as probe:  # one client: httpx.get would build a TLS context on every poll
            wait_until(lambda: ready(probe), timeout=240)
        yield url, home
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_make_serve_answers_predictions_with_the_model_version(make_serve: tuple[str, Path]) -> None:
    url, _ = make_serve
    risky = httpx.post(f"{url}/api/models/diabetes_risk/prediction", json=PATIENT).json()
    healthy = httpx.post(f"{url}/api/models/diabetes_risk/prediction", json=HEALTHY).json()
    assert risky["model_version"] == "1.0.0"
    assert risky["output"]["prediction"] == "diabetes"
    assert healthy["output"]["prediction"] == "no_diabetes"
    assert risky["output"]["probabilities"]["diabetes"] > healthy["output"]["probabilities"]["diabetes"]


def test_docs_page_and_contract_are_served(make_serve: tuple[str, Path]) -> None:
    url, _ = make_serve
    assert "swagger" in httpx.get(f"{url}/docs").text.lower()
    schema = httpx.get(f"{url}/openapi.json").json()["components"]["schemas"]["DiabetesRiskInput"]
    assert schema["properties"]["glucose"]["description"].startswith("Plasma glucose")
    assert schema["properties"]["age"]["type"] == "integer"


def test_the_served_bundle_carries_reports_metrics_and_a_verified_signer(make_serve: tuple[str, Path]) -> None:
    url, home = make_serve
    detail = httpx.get(f"{url}/api/models/diabetes_risk").json()
    assert detail["signer"] == "example-key"
    metadata = detail["metadata"]
    assert set(metadata["metrics"]) >= {"accuracy", "roc_auc", "f1"}
    assert metadata["metrics"]["roc_auc"] > 0.75
    assert "reports/evaluation.html" in metadata["reports"]
    assert metadata["statistics"]["glucose"]["count"] == 532
    version_dir = home / "store" / "diabetes_risk" / "1.0.0"
    assert (version_dir / "reports" / "roc_curve.png").read_bytes().startswith(b"\x89PNG")
    assert zipfile.is_zipfile(version_dir / "model.skops")  # skops, not pickle
    assert not (version_dir / "model.joblib").exists()
