"""The trial prediction (serve/lifecycle/trial.py) against the real server: a signed model that crashes the process when it
predicts (SIGSEGV) or hangs leaves only itself unready, beside models that keep answering; on hot reload the last
good version keeps serving. Without the trial the same bundle takes the whole server down (the payload is live).

The crasher is a test-only trusted type (tests/support/trial_models.py) whose signed state says "crash": it stands in
for a segfault-class bug that load-time structure validation does not catch.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

import sealserve
from sealserve.bundle.keyring import Keyring
from sealserve.packing.build import sign_folder
from sealserve.runtime.bundle_model import BundleModel
from sealserve.serve.lifecycle.trial_child import trial_records
from sealserve.trust.verify import verify_bundle
from tests.support.bundles import CLASS_LABELS, FEATURE_OVERRIDES, Workspace, training_data
from tests.support.server import serve, wait_until
from tests.support.trial_models import TYPE, TrialClassifier

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # the server imports TYPE
RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


def publish(space: Workspace, name: str, version: str, behaviour: str, *, alias: str = "production") -> Path:
    """Pack a TrialClassifier that predicts normally, then (for "crash"/"hang") change the one signed string that says
    how it behaves and re-sign the folder with the trusted key — what an insider with the key, or a bug, could ship."""
    frame, target = training_data()
    model = TrialClassifier().fit(frame.to_numpy(dtype="float64"), target)
    model.behaviour = "predict"  # an instance attribute: part of the model file's state
    folder = space.root / "bundles" / f"{name}-{version}"
    shutil.rmtree(folder, ignore_errors=True)
    sealserve.pack(
        model,
        name=name,
        version=version,
        private_key=space.key,
        out=folder,
        sample=frame,
        features=FEATURE_OVERRIDES,
        class_labels=CLASS_LABELS,
        trust=[TYPE],
    )
    if behaviour != "predict":
        set_behaviour(folder / "model.skops", behaviour)
        sign_folder(folder, space.key, subject=name)
    space.store.push(folder)
    space.store.promote(name, version, alias)
    return folder


def set_behaviour(model_file: Path, behaviour: str) -> None:
    with zipfile.ZipFile(model_file) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(model_file, "w") as archive:
        for info, data in entries:
            if info.filename == "schema.json":
                schema = json.loads(data)
                state = schema["content"]["content"]["behaviour"]
                assert state["content"] == json.dumps("predict")
                state["content"] = json.dumps(behaviour)
                data = json.dumps(schema).encode()
            archive.writestr(info, data)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    space = Workspace.create(tmp_path_factory.mktemp("trial"))
    space.publish("demo", "1.0.0")
    publish(space, "control", "1.0.0", "predict")
    publish(space, "crasher", "1.0.0", "crash")
    publish(space, "hanger", "1.0.0", "hang")
    publish(space, "allocator", "1.0.0", "allocate")
    publish(space, "roomy", "1.0.0", "allocate")
    return space


def trusted(name: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "trusted_types": [TYPE], "trial_prediction": True, **options}


def model_error(client: httpx.Client, name: str) -> str | None:
    error: str | None = client.get(f"/api/models/{name}").json().get("error")
    return error


def test_a_crashing_or_hanging_model_stays_unready_while_the_others_serve(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config(
        tmp_path / "service.yaml", {"name": "demo"}, trusted("control"), trusted("crasher"), trusted("hanger", trial_timeout=3)
    )
    with serve(config, tmp_path, ready=False, env=ENV) as server, server.client() as client:
        # every model settled: each trial child imports scikit-learn itself, so the control may pass after the hanger fails
        wait_until(lambda: all(m["ready"] or m["error"] for m in client.get("/api/health/ready").json()["models"]), timeout=120)
        assert model_error(client, "crasher") == "the model crashed in its trial prediction (SIGSEGV)"
        assert model_error(client, "hanger") == "the model did not finish its trial prediction within 3s (killed)"
        assert client.post("/api/models/crasher/prediction", json=RECORD).status_code == 503
        assert client.post("/api/models/hanger/prediction", json=RECORD).status_code == 503
        for name in ("demo", "control"):  # the control is the crasher's bundle but for one signed string
            answer = client.post(f"/api/models/{name}/prediction", json=RECORD)
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == "1.0.0"
        assert client.get("/api/health").status_code == 200
        assert client.get("/api/health/ready").status_code == 503
        assert server.process.poll() is None
        log = server.log()
        assert "Fatal Python error: Segmentation fault" in log  # the child's own report, logged by the server
        assert "trial prediction passed" in log


def test_a_model_past_its_trial_memory_limit_stays_unready_and_one_within_it_serves(workspace: Workspace, tmp_path: Path) -> None:
    """The allocator takes 1 GiB when it predicts: refused under a 512 MiB cap. "roomy" is the same model under the
    default 4096 MiB cap, the positive control: it passes its trial and answers."""
    config = workspace.config(tmp_path / "service.yaml", trusted("allocator", trial_memory_mb=512), trusted("roomy"))
    with serve(config, tmp_path, ready=False, env=ENV) as server, server.client() as client:
        wait_until(lambda: model_error(client, "allocator") is not None, timeout=120)
        wait_until(lambda: client.get("/api/models/roomy").json()["ready"], timeout=120)
        assert model_error(client, "allocator") == "the model failed its trial prediction (MemoryError)"
        answer = client.post("/api/models/roomy/prediction", json=RECORD)
        assert answer.status_code == 200, answer.text
        assert server.process.poll() is None


def test_models_load_side_by_side_so_a_hanging_trial_delays_no_other_model(workspace: Workspace, tmp_path: Path) -> None:
    """The hanger comes first in the config and hangs for its whole 90 s timeout; the control behind it answers
    long before that (one after another, it would wait the 90 s), and the server is unready until all are done."""
    config = workspace.config(tmp_path / "service.yaml", trusted("hanger", trial_timeout=90), trusted("control"))
    with serve(config, tmp_path, ready=False, env=ENV) as server, server.client() as client:
        wait_until(lambda: client.get("/api/models/control").json()["ready"], timeout=60)
        answer = client.post("/api/models/control/prediction", json=RECORD)
        assert answer.status_code == 200, answer.text
        hanger = client.get("/api/models/hanger").json()
        assert (hanger["ready"], hanger["error"]) == (False, None)  # still in its trial
        assert client.get("/api/health/ready").status_code == 503


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_trial_in_progress_ends_with_a_killed_server(workspace: Workspace, tmp_path: Path) -> None:
    """SIGKILL leaves the server no time to clean up: the hanging trial's child still ends, with the trial runner."""
    config = workspace.config(tmp_path / "service.yaml", trusted("hanger", trial_timeout=90))
    with serve(config, tmp_path, ready=False, env=ENV) as server:
        wait_until(lambda: len(descendants(server.process.pid)) >= 3, timeout=60)  # runner, its tracker, the trial
        below = descendants(server.process.pid)
        assert below
        server.process.kill()
        server.process.wait(timeout=30)
        wait_until(lambda: not any(alive(pid) for pid in below), timeout=30)


def test_hot_reload_to_a_crashing_version_keeps_the_last_good_one_serving(workspace: Workspace, tmp_path: Path) -> None:
    publish(workspace, "flip", "1.0.0", "predict")
    config = workspace.config(tmp_path / "service.yaml", trusted("flip"), storage={"poll_interval": 0.2})
    with serve(config, tmp_path, env=ENV) as server, server.client() as client:
        publish(workspace, "flip", "2.0.0", "crash")
        wait_until(lambda: model_error(client, "flip") is not None, timeout=60)
        assert model_error(client, "flip") == "reload failed, still serving 1.0.0: the model crashed in its trial prediction (SIGSEGV)"
        answer = client.post("/api/models/flip/prediction", json=RECORD)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "1.0.0"
        assert server.process.poll() is None


def test_without_the_trial_the_crasher_takes_the_server_down(workspace: Workspace, tmp_path: Path) -> None:
    """Positive control: the payload is live — with `trial_prediction: false` the model goes live and its first
    prediction kills the whole process, and every model with it."""
    config = workspace.config(tmp_path / "service.yaml", {"name": "demo"}, trusted("crasher", trial_prediction=False))
    with serve(config, tmp_path, env=ENV) as server, server.client() as client:
        with pytest.raises(httpx.TransportError):
            client.post("/api/models/crasher/prediction", json=RECORD)
        assert server.process.wait(timeout=30) == -signal.SIGSEGV


def test_trial_records_are_valid_client_input_from_the_bundle_statistics(workspace: Workspace) -> None:
    verified = verify_bundle(workspace.root / "bundles" / "control-1.0.0", Keyring.load(workspace.keyring))
    try:
        records = trial_records(verified.metadata)
        schema = BundleModel(verified.metadata, verified.load(trusted_types=(TYPE,))).input_schema
    finally:
        verified.discard()
    statistics = verified.metadata.statistics
    assert [record["size"] for record in records[1:3]] == [statistics["size"].minimum, statistics["size"].maximum]
    assert all(isinstance(record["count"], int) for record in records)
    assert {record["color"] for record in records} <= set(FEATURE_OVERRIDES["color"]["categories"])
    for record in records:
        schema.model_validate(record)
