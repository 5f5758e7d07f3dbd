"""Logging in to the web pages in a real browser, and the session cookie's limits: it opens pages, never the API.

The attacker is a page on another loopback port: the same *site* as the service (ports do not make sites), so the
browser sends even a SameSite=Strict cookie with its forms. The server must refuse those requests by itself.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.auth.conftest import PASSWORDS, AuthServer
from tests.auth.test_auth_matrix import DEMO


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    fresh = browser.new_context()
    yield fresh
    fresh.close()


def log_in(page: Page, user: str, password: str) -> int:
    """Submit the login form; the status of the answer to the form's POST."""
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    with page.expect_response(lambda response: response.request.method == "POST") as posted:
        page.click("button[type=submit]")
    page.wait_for_load_state()
    return posted.value.status


def session_cookie(context: BrowserContext) -> dict[str, Any]:
    return next(dict(cookie) for cookie in context.cookies() if cookie["name"] == "sealserve_session")


@pytest.fixture
def attacker(auth_server: AuthServer) -> Iterator[str]:
    """Another origin on 127.0.0.1 whose pages post forms to the service, as a malicious site would."""
    target = html.escape(auth_server.url)

    class Pages(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            forms = {
                "/predict": f'<form method="post" action="{target}/api/models/demo/prediction" enctype="text/plain">'
                '<input name=\'{"size": 7.5, "count": 3, "color": "BLUE", "x":"\' value=\'"}\'></form>',
                "/login": f'<form method="post" action="{target}/ui/login">'
                '<input name="grant_type" value="password"><input name="username" value="alice">'
                f'<input name="password" value="{html.escape(PASSWORDS["alice"])}"></form>',
            }
            body = f"<!doctype html><html><body>{forms[self.path]}</body></html>".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_browser_is_sent_to_the_login_form_logs_in_reads_the_pages_and_logs_out(auth_server: AuthServer, context: BrowserContext) -> None:
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(f"{message.text} {message.location['url']}") if message.type == "error" else None)
    page.goto(f"{auth_server.url}/ui/models/demo")
    assert page.url == f"{auth_server.url}/ui/login?next=/ui/models/demo"

    assert log_in(page, "alice", "not her password") == 401
    assert page.locator("[role=alert]").inner_text() == "wrong username or password"
    assert not any(cookie["name"] == "sealserve_session" for cookie in context.cookies())
    errors.clear()  # the 401 answer to the wrong password is one

    assert log_in(page, "alice", PASSWORDS["alice"]) == 303
    assert page.url == f"{auth_server.url}/ui/models/demo"
    assert "demo" in page.locator("h1").inner_text()
    cookie = session_cookie(context)
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"], cookie["path"]) == (True, "Strict", False, "/")
    assert page.goto(f"{auth_server.url}/").status == 200
    assert "demo" in page.locator("tbody").inner_text()
    assert page.goto(f"{auth_server.url}/docs").status == 200
    assert errors == []

    page.goto(f"{auth_server.url}/")
    with page.expect_navigation():
        page.click("form.logout button")
    assert page.url.startswith(f"{auth_server.url}/ui/login")
    assert not any(cookie["name"] == "sealserve_session" for cookie in context.cookies())
    page.goto(f"{auth_server.url}/")
    assert page.url.startswith(f"{auth_server.url}/ui/login")


def test_the_session_cookie_opens_pages_but_never_an_api_call(auth_server: AuthServer, context: BrowserContext, attacker: str) -> None:
    page = context.new_page()
    page.goto(f"{auth_server.url}/ui/login")
    log_in(page, "alice", PASSWORDS["alice"])  # alice may predict: her bearer token would be accepted by the API
    requests = context.request  # shares the browser's cookies
    assert requests.get(f"{auth_server.url}/").status == 200  # positive control: the cookie is live
    token = httpx.post(
        f"{auth_server.url}/api/auth/token", data={"grant_type": "password", "username": "alice", "password": PASSWORDS["alice"]}
    ).json()["access_token"]
    as_bearer = httpx.post(f"{auth_server.url}/api/models/demo/prediction", json=DEMO, headers={"Authorization": f"Bearer {token}"})
    assert as_bearer.status_code == 200, as_bearer.text

    assert requests.post(f"{auth_server.url}/api/models/demo/prediction", data=DEMO).status == 401
    assert requests.get(f"{auth_server.url}/api/models/demo").status == 401
    assert requests.get(f"{auth_server.url}/v2/models/demo").status == 401
    assert requests.post(f"{auth_server.url}/api/admin/models/demo/reload").status == 401

    attack = context.new_page()
    attack.goto(f"{attacker}/predict")
    with attack.expect_navigation() as landed:
        attack.evaluate("document.forms[0].submit()")
    response = landed.value
    assert response is not None
    assert response.status == 401  # the browser sent the cookie (same site); the server ignored it


def test_a_login_form_posted_from_another_site_is_refused(auth_server: AuthServer, context: BrowserContext, attacker: str) -> None:
    attack = context.new_page()
    attack.goto(f"{attacker}/login")
    with attack.expect_navigation() as landed:
        attack.evaluate("document.forms[0].submit()")
    response = landed.value
    assert response is not None
    assert response.status == 403
    assert not any(cookie["name"] == "sealserve_session" for cookie in context.cookies())
    page = context.new_page()
    page.goto(f"{auth_server.url}/ui/login")
    log_in(page, "alice", PASSWORDS["alice"])  # positive control: the same form from the service's own page works
    assert session_cookie(context)["value"].count(".") == 2
