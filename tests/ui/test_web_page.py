"""The web page and /docs in a real browser (Debian's chromium driven by Playwright) against the real server.

The diabetes example is published as `make serve` does, served with the real CLI, given some traffic, then looked
at: no console errors, the model with its version and signer, the ROC curve loaded, the drift chart, and /docs
rendering its operations with every network request answered by the server itself. Screenshots go to
.sealserve/test-artifacts/ui/.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page

from tests.support.server import RunningServer, serve

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".sealserve" / "test-artifacts" / "ui"
EXAMPLE = ROOT / "examples" / "diabetes_risk"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("ui-home")
    subprocess.run([sys.executable, str(EXAMPLE / "publish.py"), "--home", str(home)], check=True, cwd=ROOT, capture_output=True)
    with serve(EXAMPLE / "service.yaml", home, env={"SEALSERVE_HOME": str(home)}) as running:
        batch = pd.read_csv(EXAMPLE / "data" / "pima.csv.gz").drop(columns=["diabetes"]).head(200).to_dict("records")
        answer = httpx.post(f"{running.url}/api/models/diabetes_risk/predictions", json=batch, timeout=30)
        assert answer.status_code == 200, answer.text
        yield running


def open_page(browser: Browser, url: str) -> tuple[Page, list[str], list[str]]:
    """A page with its console errors and every URL it requested, loaded and settled."""
    page = browser.new_page()
    errors: list[str] = []
    requested: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url, wait_until="networkidle")
    return page, errors, requested


def model_detail(server: RunningServer) -> dict[str, Any]:
    detail: dict[str, Any] = httpx.get(f"{server.url}/api/models/diabetes_risk", timeout=10).json()
    return detail


def test_the_overview_lists_each_model_with_version_and_signer(server: RunningServer, browser: Browser) -> None:
    detail = model_detail(server)
    page, errors, requested = open_page(browser, f"{server.url}/")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)
    assert errors == []
    row = page.locator("tbody tr", has_text="diabetes_risk")
    assert row.locator(".version").inner_text() == detail["version"] == "1.0.0"
    assert row.locator(".signer").inner_text() == detail["signer"]
    assert "ready" in row.inner_text()
    assert all(url.startswith(server.url) for url in requested), requested
    page.close()


def test_the_model_page_shows_the_roc_curve_and_the_drift_chart(server: RunningServer, browser: Browser) -> None:
    page, errors, requested = open_page(browser, f"{server.url}/ui/models/diabetes_risk")
    page.screenshot(path=str(ARTIFACTS / "model.png"), full_page=True)
    assert errors == []
    roc = page.locator("img[alt='reports/roc_curve.png']")
    assert roc.evaluate("image => image.complete && image.naturalWidth") > 0
    bars = page.locator("svg.drift rect")
    assert bars.count() == len(model_detail(server)["metadata"]["features"])
    assert "pregnancies" in (page.locator("svg.drift").text_content() or "")
    assert all(url.startswith(server.url) for url in requested), requested
    page.close()


def test_reports_are_served_safely(server: RunningServer) -> None:
    base = f"{server.url}/ui/models/diabetes_risk/reports"
    image = httpx.get(f"{base}/reports/roc_curve.png", timeout=10)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    page = httpx.get(f"{base}/reports/evaluation.html", timeout=10)
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("sandbox")  # its scripts, if any, never run
    for probe in ("reports/../sealserve.json", "..%2F..%2Fetc%2Fpasswd", "reports/%2e%2e/model.skops", "model.skops"):
        assert httpx.get(f"{base}/{probe}", timeout=10).status_code == 404, probe


def test_docs_render_without_the_internet(server: RunningServer, browser: Browser) -> None:
    page, errors, requested = open_page(browser, f"{server.url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "docs.png"), full_page=True)
    assert page.locator(".opblock").count() >= 10  # the prediction, protocol and health operations
    assert errors == []
    assert requested, "the page made no requests"
    assert all(url.startswith(server.url) for url in requested), [url for url in requested if not url.startswith(server.url)]
    page.close()
