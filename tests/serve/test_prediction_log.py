"""The prediction log: what a record holds, size-based rotation, sampling, and drops (never blocking) on a slow disk."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sealserve.serve import create_app, load_config
from sealserve.serve.model_options import PredictionLog
from sealserve.serve.observability import prediction_log
from tests.support.bundles import Workspace
from tests.support.server import wait_until

DEMO = {"size": 7.5, "count": 3, "color": "BLUE"}


def read_records(path: Path) -> list[dict[str, Any]]:
    """Oldest first: path.N … path.1, then path."""
    files = [*sorted(path.parent.glob(path.name + ".*"), key=lambda file: int(file.suffix[1:]), reverse=True), path]
    return [json.loads(line) for file in files for line in file.read_text().splitlines()]


def test_each_prediction_is_logged_with_its_inputs_outputs_version_and_request_id(tmp_path: Path) -> None:
    space = Workspace.create(tmp_path)
    space.publish("demo", "1.0.0")
    log = tmp_path / "predictions.jsonl"
    config = space.config(tmp_path / "service.yaml", {"name": "demo", "prediction_log": {"path": str(log)}})
    with TestClient(create_app(load_config(config))) as client:
        wait_until(lambda: client.get("/api/health/ready").status_code == 200, timeout=60)
        one = client.post("/api/models/demo/prediction", json=DEMO, headers={"X-Request-ID": "audit-1"})
        assert one.status_code == 200
        batch = [{**DEMO, "size": float(index % 10)} for index in range(19)] + [{**DEMO, "color": "RED"}]  # 20 rows: columnar
        assert client.post("/api/models/demo/predictions", json=batch).status_code == 200
        assert client.post("/api/models/demo/prediction", json={**DEMO, "size": 70}).status_code == 422  # failures are not logged
    records = read_records(log)  # the app's shutdown wrote everything queued
    assert records[0]["request_id"] == "audit-1"
    assert len(records) == 2
    first, second = records
    assert first["model"] == "demo"
    assert first["version"] == "1.0.0"
    assert first["protocol"] == "native"
    assert first["inputs"] == [DEMO]  # as the client sent it: the label BLUE, not the code 2.0
    assert first["outputs"] == [one.json()["output"]]
    assert len(second["inputs"]) == len(second["outputs"]) == 20
    assert second["inputs"][-1]["color"] == "RED"


class Blocked:
    """A stand-in for a disk that stops answering until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def emit(self, record: Any) -> None:
        self.entered.set()
        assert self.release.wait(timeout=30)


@pytest.fixture
def plain_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prediction_log, "record_of", lambda entry: {"n": entry.request})


def test_a_slow_disk_drops_and_counts_records_instead_of_blocking(tmp_path: Path, plain_records: None) -> None:
    dropped: list[str] = []
    log = prediction_log.ModelLog("demo", PredictionLog(path=tmp_path / "p.jsonl", queue=5), dropped.append)
    disk = Blocked()
    log._handler.emit = disk.emit  # type: ignore[method-assign]
    log.offer(0, None)  # type: ignore[arg-type]
    assert disk.entered.wait(timeout=10)  # the writer holds record 0
    for number in range(1, 21):
        log.offer(number, None)  # type: ignore[arg-type]  # returns at once: nothing here waits on the disk
    assert log.dropped == 15  # 5 queued, 15 dropped
    assert dropped == ["demo"] * 15
    disk.release.set()
    log.close()
    assert log.written == 6


def test_files_rotate_by_size_and_sampling_logs_about_the_share_asked(tmp_path: Path, plain_records: None) -> None:
    path = tmp_path / "p.jsonl"
    log = prediction_log.ModelLog("demo", PredictionLog(path=path, max_bytes=200, backups=2))
    for number in range(100):
        log.offer(number, None)  # type: ignore[arg-type]
    log.close()
    assert sorted(file.name for file in tmp_path.iterdir()) == ["p.jsonl", "p.jsonl.1", "p.jsonl.2"]
    assert all(file.stat().st_size <= 200 for file in tmp_path.iterdir())
    kept = [record["n"] for record in read_records(path)]
    assert kept == sorted(kept)
    assert kept[-1] == 99  # the newest records survive rotation

    sampled = prediction_log.ModelLog("demo", PredictionLog(path=tmp_path / "s.jsonl", sample=0.25, max_bytes=1 << 20))
    for number in range(4000):
        sampled.offer(number, None)  # type: ignore[arg-type]
    sampled.close()
    assert 800 <= sampled.written <= 1200  # 1,000 expected; the binomial spread is about 27
