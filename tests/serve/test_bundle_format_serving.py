"""A fleet mid-upgrade: the server serves a same-major bundle with fields it does not know, and names the format a newer one needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sealserve
from sealserve.bundle.format_version import FORMAT_MAJOR
from tests.support.bundles import CLASS_LABELS, FEATURE_OVERRIDES, Workspace, fitted_model, training_data
from tests.support.server import serve, wait_until

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


def publish_rewritten(space: Workspace, name: str, change: Any) -> None:
    frame, target = training_data()
    out = space.root / "bundles" / name
    bundle = sealserve.pack(
        fitted_model(frame, target), name=name, version="1.0.0", private_key=space.key, out=out, sample=frame,
        features=FEATURE_OVERRIDES, class_labels=CLASS_LABELS,
    )  # fmt: skip
    metadata = json.loads((bundle / "sealserve.json").read_text())
    change(metadata)
    (bundle / "sealserve.json").write_text(json.dumps(metadata))
    sealserve.packing.build.sign_folder(bundle, space.key, subject=name)
    space.store.push(bundle)
    space.store.promote(name, "1.0.0", "production")


def test_same_major_extras_serve_and_a_newer_major_stays_unready_naming_the_format(tmp_path: Path) -> None:
    space = Workspace.create(tmp_path)
    publish_rewritten(space, "extended", lambda metadata: metadata.update(explanations={"method": "shap"}))
    publish_rewritten(space, "future", lambda metadata: metadata.update(schema_version=FORMAT_MAJOR + 1))
    config = space.config(tmp_path / "service.yaml", {"name": "extended"}, {"name": "future"})
    with serve(config, tmp_path, ready=False) as server, server.client() as client:
        wait_until(lambda: client.get("/api/models/future").json()["error"] is not None)
        wait_until(lambda: client.get("/api/models/extended").json()["ready"])
        answer = client.post("/api/models/extended/prediction", json=RECORD)
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"]["prediction"] == "large"
        future = client.get("/api/models/future").json()
        assert future["ready"] is False
        assert f"bundle format {FORMAT_MAJOR + 1}" in future["error"], future
        assert f"this server reads bundle format {FORMAT_MAJOR} and older" in future["error"], future
        assert client.post("/api/models/future/prediction", json=RECORD).status_code == 503
        assert "Traceback" not in server.log()
