"""The pods' grace period holds the server's whole drain: the kubelet's SIGKILL must never cut one short.

The server's bound is shutdown.drain_seconds + shutdown.timeout, plus the margin the parent of --workers gives a worker
before killing it (serve/workers.py); both settings are read the way the server reads them, from each overlay's
ConfigMap and the Deployment's environment, so a change to the defaults or to a manifest that breaks this fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sealserve.serve.config import Shutdown
from sealserve.serve.settings import Overrides, load_settings
from sealserve.serve.workers import JOIN_MARGIN
from tests.deploy.manifests import KSERVE_FILES, OVERLAYS, container, deployed_settings, documents, find, pod_environment

KUBERNETES_DEFAULT_GRACE = 30  # seconds: what a pod gets when its spec does not say (a ServingRuntime cannot)


def bound(shutdown: Shutdown) -> float:
    return shutdown.drain_seconds + shutdown.timeout + JOIN_MARGIN


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_the_deployments_grace_period_holds_the_drain_and_the_timeout(rendered: dict[str, Path], overlay: str, tmp_path: Path) -> None:
    docs = documents(rendered[overlay].read_text())
    deployment = find(docs, "Deployment", "sealserve")
    server = container(deployment, "sealserve")
    shutdown = deployed_settings(docs, tmp_path).config.shutdown
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= bound(shutdown), f"terminationGracePeriodSeconds {grace} < drain {shutdown.drain_seconds} + timeout {shutdown.timeout}"
    assert shutdown.drain_seconds > 0, "a drain window: kube-proxy needs time to drop a terminating pod from the Service"
    assert "lifecycle" not in server, "no preStop hook: the server's own drain window keeps accepting while endpoints update"


def test_the_serving_runtimes_drain_fits_kubernetes_default_grace_period() -> None:
    runtime = yaml.safe_load(KSERVE_FILES[0].read_text())
    assert "terminationGracePeriodSeconds" not in runtime["spec"]
    server = container(runtime, "kserve-container")
    directory_model = {"SEALSERVE_MODEL_DIR": "/mnt/models", "SEALSERVE_MODEL_NAME": "m"}  # KServe's --model_dir, --model_name
    shutdown = load_settings(None, {**pod_environment(server), **directory_model}, Overrides())
    assert bound(shutdown.config.shutdown) <= KUBERNETES_DEFAULT_GRACE


def test_the_defaults_are_what_the_manifests_were_sized_for() -> None:
    """The Deployment's comment and docs/deploy.md quote these numbers."""
    assert (Shutdown().drain_seconds, Shutdown().timeout, JOIN_MARGIN) == (5.0, 30.0, 5.0)
