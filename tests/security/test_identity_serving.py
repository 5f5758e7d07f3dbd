"""The real server under a trust policy: it serves what the policy admits (a release certificate, a CI workflow's
keyless signature, the platform key on a name only the catch-all covers) and refuses the platform key on a name a
narrower rule covers, with the rule named; the model detail, the web page and the metric show who signed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

import sealserve
from sealserve.store import LocalStore
from tests.security.identity_fixtures import GITHUB, RELEASE, WORKFLOW, World, build_world, sign_by_certificate
from tests.support.bundles import CLASS_LABELS, FEATURE_OVERRIDES, fitted_model, training_data
from tests.support.server import serve, wait_until

RECORD = {"size": 7.5, "count": 3, "color": "BLUE"}


def publish(world: World, store: LocalStore, name: str, sign: Callable[[Path], object] | None = None) -> None:
    """Pack `name` 1.0.0 with the platform key, re-sign it with `sign` if given, push it, point production at it."""
    frame, target = training_data()
    folder = sealserve.pack(
        fitted_model(frame, target),
        name=name,
        version="1.0.0",
        private_key=world.platform_key,
        out=world.root / "bundles" / name,
        sample=frame,
        features=FEATURE_OVERRIDES,
        class_labels=CLASS_LABELS,
        compiled=False,
    )
    if sign is not None:
        sign(folder)
    store.push(folder)
    store.promote(name, "1.0.0", "production")


def test_the_server_serves_and_refuses_by_the_trust_policy(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    store = LocalStore(tmp_path / "store")
    publish(world, store, "risk", lambda folder: sign_by_certificate(folder, world.leaf(), (world.intermediate,)))
    publish(
        world, store, "fraud_ci", lambda folder: world.sigstore.sign_folder(folder, subject="fraud_ci", identity=WORKFLOW, issuer=GITHUB)
    )
    publish(world, store, "fraud_platform")  # the platform key on a name rule 1 covers
    publish(world, store, "churn")  # the platform key on a name only the catch-all covers
    names = ("risk", "fraud_ci", "fraud_platform", "churn")
    models = [{"name": name, "store_url": store.url, "trial_prediction": False} for name in names]
    config = tmp_path / "service.yaml"
    config.write_text(yaml.safe_dump({"trust_policy": str(world.policy), "models": models}))

    with serve(config, tmp_path, ready=False) as server, server.client() as client:
        states = lambda: {m["name"]: m for m in client.get("/api/health/ready").json()["models"]}  # noqa: E731
        wait_until(lambda: all(state["ready"] or state["error"] for state in states().values()), timeout=60)
        found = states()
        assert [name for name in names if found[name]["ready"]] == ["risk", "fraud_ci", "churn"]
        assert found["fraud_platform"]["error"] == (
            "signer platform-2026 is not granted model 'fraud_platform': rule 1 (models: risk, fraud_*) decides, "
            "and it does not accept this signer"
        )
        assert client.post("/api/models/fraud_platform/prediction", json=RECORD).status_code == 503
        for name in ("risk", "fraud_ci", "churn"):
            assert client.post(f"/api/models/{name}/prediction", json=RECORD).status_code == 200

        risk = client.get("/api/models/risk").json()["provenance"]
        assert (risk["method"], risk["identity"], risk["anchor"], risk["rule"]) == (
            "certificate",
            RELEASE,
            "corp-ca",
            "rule 1 (models: risk, fraud_*)",
        )
        keyless = client.get("/api/models/fraud_ci").json()["provenance"]
        assert (keyless["method"], keyless["identity"], keyless["issuer"]) == ("sigstore", WORKFLOW, GITHUB)
        assert "signed_at" in keyless
        assert client.get("/api/models/churn").json()["provenance"]["rule"] == "rule 2 (models: *)"

        page = client.get("/ui/models/fraud_ci").text
        assert f"sigstore: {WORKFLOW} (issuer {GITHUB})" in page
        assert "rule 1 (models: risk, fraud_*)" in page
        metrics = client.get("/metrics").text
        assert f'signer="certificate:{RELEASE}"' in metrics
        assert 'signer="platform-2026"' in metrics
        assert "Traceback" not in server.log()
