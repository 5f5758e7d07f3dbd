"""A model that loads, reports ready, then fails every request is shown failing on the web page, with its 5xx
share over the last minute counted across both workers (4xx answers are the clients' and do not count)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from playwright.sync_api import Browser

from tests.serve.test_workers import RECORD, _children, runtime_folder, two_workers
from tests.support.bundles import Workspace

ROOT = Path(__file__).resolve().parents[2]
SEARCH_PATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # the server imports the broken model
RISK = {"body_mass_index": 30, "general_health": "GOOD"}


def test_a_model_whose_requests_fail_is_shown_failing_with_the_share_summed_over_workers(tmp_path: Path, browser: Browser) -> None:
    space = Workspace.create(tmp_path)
    space.publish("demo", "1.0.0")
    config = space.config(
        tmp_path / "service.yaml",
        {"name": "demo"},
        {"class_path": "tests.support.seed_model.BrokenRiskModel"},
    )
    with two_workers(config, tmp_path, env={"PYTHONPATH": SEARCH_PATH}) as server, server.fresh_client() as fresh:
        for _ in range(30):  # each on a new connection: either worker answers
            assert fresh.post("/api/models/broken_risk/prediction", json=RISK).status_code == 500
        for _ in range(10):
            assert fresh.post("/api/models/demo/prediction", json=RECORD).status_code == 200
            assert fresh.post("/api/models/demo/prediction", json={}).status_code == 422
        writers = {path.name for path in (runtime_folder(max(_children(server.process.pid))) / "metrics").glob("counter_*.db")}
        assert len(writers) >= 2, writers  # both workers answered some

        assert httpx.get(f"{server.url}/api/health/ready", timeout=10).status_code == 200  # every model loaded: readiness cannot tell
        for _ in range(3):  # a fresh browser context, a new connection: whichever worker renders the page counts both
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{server.url}/")
            broken = page.locator("tbody tr", has_text="broken_risk")
            assert broken.locator(".health").inner_text() == "failing"
            assert "bad" in (broken.locator(".health").get_attribute("class") or "")
            assert broken.locator(".errors").inner_text() == "30 of 30 (100%)"
            healthy = page.locator("tbody tr", has_text="demo")
            assert healthy.locator(".health").inner_text() == "ready"
            assert healthy.locator(".errors").inner_text() == "0 of 20 (0%)"
            assert "some answer mostly server errors" in page.locator("main > p").first.inner_text()
            page.goto(f"{server.url}/ui/models/broken_risk")
            assert page.locator("dd.health").inner_text() == "failing"
            context.close()
