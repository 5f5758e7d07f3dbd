"""deploy/Dockerfile built and run with podman as Kubernetes and KServe run it: read-only root, no capabilities, no
privilege escalation, the image's own user, the example bundle read-only in /mnt/models, KServe's arguments.

Runs in `make test` (marker `image`); fails, never skips, when podman cannot run here (tests/image/conftest.py).
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.image.conftest import Example, Image, readable
from tests.support.server import free_port, wait_until
from tests.support.tamper import flip_byte

# The first run in a session may build the base and the image (15 minutes on a busy two-core machine).
pytestmark = [pytest.mark.image, pytest.mark.timeout(2400)]
ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "deploy" / "kserve" / "clusterservingruntime.yaml"
NAME = "diabetes_risk"  # KServe passes the InferenceService's name; the bundle is signed under this one
PATIENT = {"pregnancies": 2, "glucose": 148.0, "blood_pressure": 72.0, "skin_thickness": 35.0, "bmi": 33.6, "pedigree": 0.627, "age": 50}
UID = 10001  # the Dockerfile's USER, the Deployment's and the ServingRuntime's runAsUser
KUBERNETES_DEFAULT_GRACE = 30  # a ServingRuntime's pods get Kubernetes' default grace period
HARDENING = ("--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")


def kserve_container() -> dict[str, Any]:
    runtime = yaml.safe_load(RUNTIME.read_text())
    return dict(next(item for item in runtime["spec"]["containers"] if item["name"] == "kserve-container"))


def kserve_args(name: str, http_port: int, grpc_port: int) -> list[str]:
    """The ServingRuntime's args with `{{.Name}}` filled in; on the host network the ports are free ones, not 8080/8081."""
    ports = {"--http_port": str(http_port), "--grpc_port": str(grpc_port)}
    args = []
    for arg in kserve_container()["args"]:
        flag, _, value = arg.partition("=")
        args.append(f"{flag}={ports.get(flag, value.replace('{{.Name}}', name))}")
    return args


def kserve_env() -> dict[str, str]:
    return {item["name"]: item["value"] for item in kserve_container().get("env", [])}


@dataclass
class Container:
    image: Image
    name: str
    url: str
    started: float

    def logs(self) -> str:
        done = self.image.podman.run("logs", self.name, check=False)
        return done.stdout + done.stderr

    def inspect(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.image.podman.run("inspect", self.name).stdout)[0]
        return state

    def ready(self) -> int:
        try:
            return httpx.get(f"{self.url}/api/health/ready", timeout=2).status_code
        except httpx.TransportError:
            return 0


@contextmanager
def run(image: Image, models: Path, example: Example) -> Iterator[Container]:
    """`podman run` of the image with the ServingRuntime's args and env, hardened as the pod's security context says."""
    http_port, grpc_port = free_port(), free_port()
    name = f"sealserve-test-{secrets.token_hex(4)}"
    env = {**kserve_env(), "SEALSERVE_DRAIN_SECONDS": "2"}
    mounts = ["-v", f"{models}:/mnt/models:ro", "-v", f"{example.keyring}:/etc/sealserve/keyring:ro"]
    # /tmp: the ServingRuntime's emptyDir (the server's private copy of /mnt/models and its scratch space).
    options = ["--network", "host", *HARDENING, "--tmpfs", "/tmp:rw,size=1g,mode=1777", *mounts]
    options += [item for key, value in env.items() for item in ("-e", f"{key}={value}")]
    started = time.monotonic()
    image.podman.run("run", "-d", "--name", name, *options, image.tag, *kserve_args(NAME, http_port, grpc_port))
    container = Container(image, name, f"http://127.0.0.1:{http_port}", started)
    try:
        yield container
    finally:
        image.podman.run("rm", "-f", "-t", "0", name, check=False)


def process_status(container: Container) -> dict[str, str]:
    """/proc/<pid>/status of the container's main process, as the host sees it (rootful podman: the same ids)."""
    pid = container.inspect()["State"]["Pid"]
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def v2_inputs(record: dict[str, Any]) -> list[dict[str, Any]]:
    def tensor(name: str, value: Any) -> dict[str, Any]:
        return {"name": name, "shape": [1], "datatype": "INT64" if isinstance(value, int) else "FP64", "data": [value]}

    return [tensor(name, value) for name, value in record.items()]


def test_the_image_serves_the_example_from_a_read_only_mnt_models_as_uid_10001_and_drains_on_sigterm(
    image: Image, example: Example, tmp_path: Path
) -> None:
    models = readable(Path(shutil.copytree(example.version_dir, tmp_path / "models")))
    with run(image, models, example) as container, httpx.Client(base_url=container.url, timeout=2) as probe:
        seen: list[int] = []

        def ready() -> bool:
            """Polled every 20 ms through one client: the 503 window between listening and ready can be a fifth of a
            second, shorter than a poll that also runs `podman inspect` (asked only when nothing answers)."""
            try:
                seen.append(probe.get("/api/health/ready").status_code)
            except httpx.TransportError:
                if not container.inspect()["State"]["Running"]:
                    raise RuntimeError(f"the container stopped:\n{container.logs()[-3000:]}") from None
                seen.append(0)
            return seen[-1] == 200

        wait_until(ready, timeout=180, interval=0.02)
        start_to_ready = time.monotonic() - container.started
        status = process_status(container)
        with httpx.Client(base_url=container.url, timeout=10) as client:
            v1 = client.post(f"/v1/models/{NAME}:predict", json={"instances": [PATIENT]})
            v2 = client.post(f"/v2/models/{NAME}/infer", json={"inputs": v2_inputs(PATIENT)})
            detail = client.get(f"/api/models/{NAME}").json()
        assert 503 in seen, "ready before the bundle was verified and loaded"
        assert status["Uid"].split()[:2] == [str(UID), str(UID)]
        assert status["Gid"].split()[0] == str(UID)
        assert status["CapEff"] == "0000000000000000"
        assert status["NoNewPrivs"] == "1"
        state = container.inspect()
        assert state["HostConfig"]["ReadonlyRootfs"] is True
        assert v1.status_code == 200, v1.text
        assert v1.json()["predictions"] == ["diabetes"]
        assert v2.status_code == 200, v2.text
        assert v2.headers["x-model-version"] == "1.0.0"
        assert detail["version"] == "1.0.0"
        assert detail["signer"] == "example-key"
        logs = container.logs()
        assert f"model {NAME} version 1.0.0 loaded from" in logs

        signalled = time.monotonic()
        image.podman.run("kill", "--signal", "TERM", container.name)
        wait_until(lambda: container.ready() != 200, timeout=5)
        done = image.podman.run("wait", container.name, timeout=KUBERNETES_DEFAULT_GRACE + 10)
        stopped = time.monotonic() - signalled
        logs = container.logs()
    print(f"\nimage start-to-ready {start_to_ready:.1f} s; SIGTERM to exit {stopped:.1f} s")
    assert done.stdout.strip() == "0", logs[-3000:]
    assert stopped < KUBERNETES_DEFAULT_GRACE
    assert "draining;" in logs
    assert "drained in" in logs
    assert "Traceback" not in logs


def test_a_tampered_bundle_in_mnt_models_keeps_the_image_unready_with_the_reason_in_its_log(
    image: Image, example: Example, tmp_path: Path
) -> None:
    models = Path(shutil.copytree(example.version_dir, tmp_path / "models"))
    model_file = next(path for path in models.iterdir() if path.name.startswith("model."))
    flip_byte(model_file)
    readable(models)
    with run(image, models, example) as container:

        def refused() -> bool:
            return f"SHA-256 mismatch for {model_file.name}" in container.logs()

        wait_until(refused, timeout=180, interval=0.2)
        ready = httpx.get(f"{container.url}/api/health/ready", timeout=5)
        v1 = httpx.post(f"{container.url}/v1/models/{NAME}:predict", json={"instances": [PATIENT]}, timeout=5)
        logs = container.logs()
    assert ready.status_code == 503
    assert ready.json()["models"][0]["error"] == f"SHA-256 mismatch for {model_file.name}"
    assert v1.status_code == 503
    assert f"model {NAME} not loaded: SHA-256 mismatch for {model_file.name}" in logs
    assert "Traceback" not in logs
