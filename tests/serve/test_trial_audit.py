"""With the trial prediction on, the trial child audits a compiled bundle's reference model file, so the server process
serves the compiled form without importing scikit-learn or skops. The audit still decides: the child's refusal is the
server's, with the loader's own error. With the trial off the server audits it itself, reading the skops schema without
skops or scikit-learn (trust/policy/skops_schema.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

import sealserve
from sealserve.packing.build import sign_folder
from tests.support.bundles import CLASS_LABELS, FEATURE_OVERRIDES, Workspace, fitted_model, training_data
from tests.support.server import serve, wait_until

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


def mapped_libraries(pid: int) -> set[str]:
    """The site-packages distributions whose files (extension modules) the process has mapped."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split("site-packages/", 1)[1].split("/", 1)[0] for line in lines if "site-packages/" in line}


def publish_folder(space: Workspace, name: str) -> Path:
    frame, target = training_data()
    folder = space.root / "bundles" / name
    shutil.rmtree(folder, ignore_errors=True)
    sealserve.pack(
        fitted_model(frame, target),
        name=name,
        version="1.0.0",
        private_key=space.key,
        out=folder,
        sample=frame,
        features=FEATURE_OVERRIDES,
        class_labels=CLASS_LABELS,
    )
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    space = Workspace.create(tmp_path_factory.mktemp("trial-audit"))
    for name in ("demo", "unsafe"):
        folder = publish_folder(space, name)
        metadata = json.loads((folder / "sealserve.json").read_text())
        assert metadata["compiled"] is not None  # the compiled form serves
        if name == "unsafe":  # the signer declares a type outside the allow-list: the audit must refuse the bundle
            metadata["required_types"] = ["builtins.eval"]
            (folder / "sealserve.json").write_text(json.dumps(metadata))
            sign_folder(folder, space.key, subject=name)
        space.store.push(folder)
        space.store.promote(name, "1.0.0", "production")
    return space


def test_with_the_trial_on_the_server_serves_the_compiled_form_without_scikit_learn(workspace: Workspace, tmp_path: Path) -> None:
    entries = [{"name": name, "trial_prediction": True} for name in ("demo", "unsafe")]
    config = workspace.config(tmp_path / "service.yaml", *entries)
    with serve(config, tmp_path, ready=False) as server, server.client() as client:
        wait_until(lambda: all(m["ready"] or m["error"] for m in client.get("/api/health/ready").json()["models"]), timeout=60)
        states = {m["name"]: m for m in client.get("/api/health/ready").json()["models"]}
        assert states["demo"]["ready"] is True
        assert client.post("/api/models/demo/prediction", json=RECORD).status_code == 200
        assert states["unsafe"]["ready"] is False
        assert "model.skops needs types outside the allow-list: builtins.eval" in states["unsafe"]["error"]
        libraries = mapped_libraries(server.process.pid)
        assert "onnxruntime" in libraries
        assert not {"sklearn", "scipy", "pandas"} & libraries, libraries


def test_with_the_trial_off_the_server_audits_the_reference_file_itself(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config(tmp_path / "service.yaml", {"name": "demo"}, {"name": "unsafe"})
    with serve(config, tmp_path, ready=False) as server, server.client() as client:
        wait_until(lambda: all(m["ready"] or m["error"] for m in client.get("/api/health/ready").json()["models"]), timeout=60)
        states = {m["name"]: m for m in client.get("/api/health/ready").json()["models"]}
        assert states["demo"]["ready"] is True
        assert "model.skops needs types outside the allow-list: builtins.eval" in states["unsafe"]["error"]
        libraries = mapped_libraries(server.process.pid)
        assert "onnxruntime" in libraries  # the control: the mapped libraries are visible
        assert not {"sklearn", "scipy", "pandas"} & libraries, libraries  # the audit ran here without them
        assert httpx.post(f"{server.url}/api/models/unsafe/prediction", json=RECORD).status_code == 503
