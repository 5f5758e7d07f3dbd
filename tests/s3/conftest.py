"""A real S3 server for the suite: SeaweedFS, started once per session (see tests/s3/seaweed.py)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.s3.seaweed import BUCKET, Weed

__all__ = ["BUCKET", "Weed"]


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Weed]:
    server = Weed(tmp_path_factory.mktemp("seaweedfs"))
    with pytest.MonkeyPatch.context() as patch:
        # Only the test server's keys: no ~/.aws files, no instance metadata lookups.
        for name in list(os.environ):
            if name.startswith("AWS_"):
                patch.delenv(name)
        patch.setenv("AWS_CONFIG_FILE", str(server.root / "no-aws-config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(server.root / "no-aws-credentials"))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name, value in server.env().items():  # the CLI subprocesses and in-process stores use the default chain
            patch.setenv(name, value)
        server.start()
        try:
            server.client().create_bucket(Bucket=BUCKET)
            yield server
        finally:
            server.stop()


@pytest.fixture
def running_weed(weed: Weed) -> Iterator[Weed]:
    """The session server, guaranteed up before and after the test (tests that stop it get it back)."""
    if weed.process is None or weed.process.poll() is not None:
        weed.start()
    yield weed
    if weed.process is None or weed.process.poll() is not None:
        weed.start()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A store prefix of its own for every test."""
    return f"{request.node.name.replace('_', '-').replace('[', '-').replace(']', '')[:40]}-{secrets.token_hex(3)}"
