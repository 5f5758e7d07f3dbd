"""Cold start with ten models: ten signed copies of the diabetes example, served by one process.

sealserve starts them with the trial prediction on (the default) and off, the gate being "trial on ≤ 1.5× trial off";
MLServer loads the same joblib file under ten names from one repository. Each copy is its own bundle (a bundle names
its model, and the name is signed), so verification, load and trial run ten times as a user's ten models would.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import joblib
import orjson
import yaml

from peers.envs import Env
from peers.models import ROOT, VERSION, diabetes_fit, publish_bundle
from peers.servers import HOST, VENV_BIN, Launch, free_port

COPIES = 10
MODEL = "diabetes_risk"


@dataclass(frozen=True)
class TenModels:
    names: tuple[str, ...]
    store_url: str
    keyring: Path
    joblib_path: Path


def publish(work: Path) -> TenModels:
    """Ten bundles packed with `sealserve.pack` defaults, pushed and promoted in their own local store."""
    work.mkdir(parents=True)
    model, X, pack_options = diabetes_fit()
    joblib_path = work / "model.joblib"
    joblib.dump(model, joblib_path)
    names = tuple(f"{MODEL}_{index}" for index in range(COPIES))
    for name in names:
        store_url, ring = publish_bundle(work, name, model, X, **pack_options)
    return TenModels(names, store_url, ring, joblib_path)


def sealserve_launch(models: TenModels, work: Path, port: int, trial: bool) -> Launch:
    """The default configuration but for `trial_prediction`; one worker."""
    entries = [
        {"name": name, "store_url": models.store_url, "keyring": str(models.keyring), "ref": "production", "trial_prediction": trial}
        for name in models.names
    ]
    config = work / f"ten-sealserve-{'trial' if trial else 'no-trial'}.yaml"
    config.write_text(yaml.safe_dump({"service_title": "sealserve benchmark", "models": entries}))
    argv = [str(VENV_BIN / "sealserve"), "serve", str(config), "--host", HOST, "--port", str(port)]
    return Launch(argv, "/api/health/ready", {"PYTHONPATH": str(ROOT / "src"), "SEALSERVE_DRAIN_SECONDS": "0"})


def mlserver_launch(models: TenModels, env: Env, work: Path, port: int, grpc_port: int) -> Launch:
    """One repository of ten model folders; ready when each model's own readiness answers 200."""
    repository = work / "ten-mlserver"
    shutil.rmtree(repository, ignore_errors=True)
    repository.mkdir(parents=True)
    settings = {"debug": False, "host": HOST, "http_port": port, "grpc_port": grpc_port, "metrics_port": free_port()}
    (repository / "settings.json").write_text(orjson.dumps(settings).decode())
    for name in models.names:
        (repository / name).mkdir()
        model_settings = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(models.joblib_path), "version": VERSION},
        }
        (repository / name / "model-settings.json").write_text(orjson.dumps(model_settings).decode())
    ready = tuple(f"/v2/models/{name}/ready" for name in models.names)
    return Launch([str(env.bin / "mlserver"), "start", str(repository)], "/v2/health/ready", also_ready=ready)
