"""One fleet per module: three replicas of one service YAML (each its own port and cache) behind HAProxy, one store."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from sealserve.store import open_store
from sealserve.store.base import Store
from tests.fleet.fleet import DRAIN, POLL, Balancer, Replica
from tests.s3.helpers import Signer, write_config
from tests.s3.seaweed import Weed
from tests.support.server import SEALSERVE, wait_until


@dataclass
class Fleet:
    """The replicas, the balancer in front of them, and the store they all follow."""

    weed: Weed
    prefix: str  # the fleet's folder in the test bucket
    signer: Signer
    replicas: list[Replica]
    balancer: Balancer
    versions: list[str] = field(default_factory=list)  # published, oldest first
    good: str = ""  # the newest version every replica serves (a tampered one promoted later is not it)

    @property
    def url(self) -> str:
        return self.weed.url(self.prefix)

    @property
    def store(self) -> Store:
        return open_store(self.url)

    def publish(self) -> str:
        """Pack and push the next version (not promoted)."""
        version = f"1.0.{len(self.versions)}"
        self.store.push(self.signer.bundle("demo", version, seed=len(self.versions)))
        self.versions.append(version)
        return version

    def promote(self, version: str) -> float:
        """`sealserve promote`, as an operator runs it; when it said the alias moved (its interpreter's exit after that
        is no part of the convergence)."""
        argv = [SEALSERVE, "promote", "demo", version, "production", self.url]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
            assert process.stdout is not None
            line = process.stdout.readline()
            moved = time.monotonic()
            rest, errors = process.communicate(timeout=60)
        assert process.returncode == 0, errors
        assert f"production → {version}" in line, line + rest
        return moved

    def serving(self) -> dict[str, str | None]:
        return {replica.name: replica.detail().get("version") for replica in self.replicas}

    def heal(self) -> None:
        """Every replica running and ready, the store up, HAProxy seeing all of them: what each test starts from."""
        if self.weed.process is None or self.weed.process.poll() is not None:
            self.weed.start()
        for replica in self.replicas:
            if not replica.running():
                replica.start()
        wait_until(lambda: all(self.balancer.up().values()), timeout=20)


@pytest.fixture(scope="module")
def fleet(weed: Weed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    prefix = f"fleet-{secrets.token_hex(4)}"
    url = weed.url(prefix)
    signer = Signer.create(root / "signer")
    replicas = []
    for index in range(1, 4):
        name = f"replica{index}"
        # No trial prediction: its child's cold start (tests/serve/test_trial_*) would only slow every restart here.
        model = {"name": "demo", "store_url": url, "ref": "production", "keyring": str(signer.keyring), "trial_prediction": False}
        storage = {"poll_interval": POLL, "retry_initial": 0.2, "retry_max": 1.0, "cache_dir": str(root / f"{name}-cache")}
        config = write_config(root / f"{name}.yaml", [model], storage=storage, shutdown={"drain_seconds": DRAIN, "timeout": 5})
        replicas.append(Replica(name, config, root))
    built = Fleet(weed, prefix, signer, replicas, Balancer(root, replicas))
    built.good = built.publish()
    built.promote(built.good)
    try:
        for replica in replicas:
            replica.start(ready=False)
        for replica in replicas:
            replica.wait_ready()
        built.balancer.start()
        yield built
    finally:
        built.balancer.stop()
        for replica in replicas:
            if replica.running():
                replica.kill()


@pytest.fixture
def healthy(fleet: Fleet) -> Fleet:
    fleet.heal()
    return fleet
