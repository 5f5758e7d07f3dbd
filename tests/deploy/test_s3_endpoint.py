"""The S3 endpoint the AWS way: AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, plain HTTP included (one warning
naming it); the store URL's ?endpoint= still wins. Tests/deploy/test_dev_config.py runs it against a real server."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from sealserve.store import open_store
from sealserve.store.s3 import S3Store


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def opened(url: str, caplog: pytest.LogCaptureFixture) -> tuple[S3Store, list[str]]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sealserve.store"):
        store = open_store(url)
    assert isinstance(store, S3Store)
    return store, [record.getMessage() for record in caplog.records]


def test_the_s3_specific_variable_wins_and_plain_http_is_named_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://general.example:9000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://minio.sealserve.svc:9000")
    store, warnings = opened("s3://models/store", caplog)
    assert store.endpoint == "http://minio.sealserve.svc:9000"
    assert len(warnings) == 1
    assert "http://minio.sealserve.svc:9000" in warnings[0]
    assert "plain HTTP" in warnings[0]


def test_the_general_variable_applies_and_https_needs_no_warning(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.internal:9000")
    store, warnings = opened("s3://models/store", caplog)
    assert store.endpoint == "https://s3.internal:9000"
    assert warnings == []


def test_the_store_urls_endpoint_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://minio.sealserve.svc:9000")
    store, warnings = opened("s3://models/store?endpoint=https://s3.example:443", caplog)
    assert store.endpoint == "https://s3.example:443"
    assert warnings == []
