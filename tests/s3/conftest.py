"""The S3 tests' own fixtures; the SeaweedFS server (`weed`, `running_weed`) is the suite's, in tests/conftest.py."""

from __future__ import annotations

import secrets

import pytest

from tests.s3.seaweed import BUCKET, Weed

__all__ = ["BUCKET", "Weed"]


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A store prefix of its own for every test."""
    return f"{request.node.name.replace('_', '-').replace('[', '-').replace(']', '')[:40]}-{secrets.token_hex(3)}"
