"""The auth matrix on the real server: every protocol × every kind of credential → the status a client relies on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from cryptography.hazmat.primitives.asymmetric import rsa
from tritonclient.utils import InferenceServerException

from tests.auth.conftest import MAX_USER_FAILURES, PASSWORDS, AuthServer, jwk, public_pem
from tests.support.server import SEALSERVE, wait_until

DEMO = {"size": 7.5, "count": 3, "color": "BLUE"}
WEATHER = {"temperature": 55.0}


def v2_inputs(record: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = {float: "FP64", int: "INT64", str: "BYTES"}
    return [{"name": name, "shape": [1], "datatype": kinds[type(value)], "data": [value]} for name, value in record.items()]


def seldon_body(record: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"names": list(record), "ndarray": [list(record.values())]}}


PROTOCOLS: dict[str, Callable[[str, dict[str, Any]], tuple[str, dict[str, Any]]]] = {
    "native": lambda model, record: (f"/api/models/{model}/prediction", record),
    "kserve_v1": lambda model, record: (f"/v1/models/{model}:predict", {"instances": [record]}),
    "v2_rest": lambda model, record: (f"/v2/models/{model}/infer", {"inputs": v2_inputs(record)}),
    "seldon": lambda model, record: (f"/seldon/default/{model}/api/v1.0/predictions", seldon_body(record)),
}
RECORDS = {"demo": DEMO, "weather": WEATHER}


def predict(server: AuthServer, protocol: str, headers: dict[str, str], model: str = "demo") -> httpx.Response:
    path, body = PROTOCOLS[protocol](model, RECORDS.get(model, DEMO))
    return httpx.post(server.url + path, json=body, headers=headers, timeout=10)


def grpc_infer(server: AuthServer, headers: dict[str, str], model: str = "demo") -> Any:
    record = RECORDS.get(model, DEMO)
    inputs = []
    for name, value in record.items():
        datatype, array = {float: ("FP64", np.float64), int: ("INT64", np.int64), str: ("BYTES", np.object_)}[type(value)]
        tensor = grpcclient.InferInput(name, [1], datatype)
        tensor.set_data_from_numpy(np.array([value], dtype=array))
        inputs.append(tensor)
    with grpcclient.InferenceServerClient(server.grpc) as client:
        return client.infer(model, inputs, headers=headers)


def grpc_status(server: AuthServer, headers: dict[str, str], model: str = "demo") -> str:
    try:
        grpc_infer(server, headers, model)
    except InferenceServerException as exc:
        return str(exc.status())
    return "OK"


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def refused_credentials(server: AuthServer) -> dict[str, dict[str, str]]:
    """Each a reason for 401; the same credential with the fault removed is accepted (the positive control below)."""
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unsigned = jwt.encode(
        {"sub": "mallory", "scope": "predict read", "exp": int(time.time()) + 300, "iss": "sealserve", "aud": "sealserve"},
        None,
        algorithm="none",
    )
    return {
        "none": {},
        "wrong key": bearer("ssk_" + "A" * 43),
        "wrong X-API-Key": {"X-API-Key": "ssk_" + "B" * 43},
        "garbage": {"Authorization": "garbage"},
        "expired token": bearer(server.token(exp=int(time.time()) - 120)),
        "token not yet valid": bearer(server.token(nbf=int(time.time()) + 600)),
        "wrong audience": bearer(server.token(aud="someone-else")),
        "wrong issuer": bearer(server.token(iss="https://evil.example")),
        "no exp": bearer(server.token(exp=None)),
        "alg none": bearer(unsigned),
        "HS256 keyed with the RSA public key": bearer(_confused(server)),
        "wrong HS256 secret": bearer(server.token(key="another secret that is long enough to pass as one")),
        "RS256 by an untrusted key": bearer(server.rsa_token(key=other_rsa)),
        "RS256 under an Ed25519 kid": bearer(server.rsa_token(kid="ed-1")),
        "tampered payload": bearer(_tampered(server.token(scopes="read"))),
    }


def _confused(server: AuthServer) -> str:
    """The classic algorithm confusion: an HS256 token whose HMAC key is the RSA public key the service trusts (built
    by hand: pyjwt itself refuses to sign so)."""

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": "mallory", "scope": "predict read admin", "iss": "sealserve", "aud": "sealserve", "exp": int(time.time()) + 300}
    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{part(claims)}"
    mac = hmac.new(public_pem(server.rsa_key), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def _tampered(token: str) -> str:
    header, _, signature = token.split(".")
    payload = base64.urlsafe_b64encode(b'{"sub":"svc","scope":"predict read admin","iss":"sealserve","aud":"sealserve","exp":9999999999}')
    return f"{header}.{payload.decode().rstrip('=')}.{signature}"


ACCEPTED = {
    "API key (Bearer)": lambda s: bearer(s.key("ci-pipeline")),
    "API key (X-API-Key)": lambda s: {"X-API-Key": s.key("ci-pipeline")},
    "HS256 token": lambda s: bearer(s.token()),
    "RS256 token (JWKS)": lambda s: bearer(s.rsa_token()),
    "EdDSA token (JWKS)": lambda s: bearer(s.token(key=s.ed_key, algorithm="EdDSA", headers={"kid": "ed-1"})),
    "token with scp list": lambda s: bearer(s.token(scopes=None, scp=["predict"])),
    "token 20 s past exp (leeway)": lambda s: bearer(s.token(exp=int(time.time()) - 20)),
}


@pytest.mark.parametrize("protocol", [*PROTOCOLS, "v2_grpc"])
def test_every_protocol_refuses_bad_credentials_and_accepts_good_ones(auth_server: AuthServer, protocol: str) -> None:
    for case, headers in refused_credentials(auth_server).items():
        if protocol == "v2_grpc":
            assert grpc_status(auth_server, {key.lower(): value for key, value in headers.items()}) == "StatusCode.UNAUTHENTICATED", case
            continue
        answer = predict(auth_server, protocol, headers)
        assert answer.status_code == 401, (case, answer.text)
        challenge = answer.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="sealserve"'), case
        assert ('error="invalid_token"' in challenge) == (case not in ("none", "garbage")), (case, challenge)
    for case, credentials in ACCEPTED.items():
        headers = credentials(auth_server)
        if protocol == "v2_grpc":
            assert grpc_status(auth_server, {key.lower(): value for key, value in headers.items()}) == "OK", case
            continue
        answer = predict(auth_server, protocol, headers)
        assert answer.status_code == 200, (case, answer.text)


@pytest.mark.parametrize("protocol", [*PROTOCOLS, "v2_grpc"])
def test_scopes_decide_what_a_known_caller_may_do(auth_server: AuthServer, protocol: str) -> None:
    cases = [
        ("read-only key", {"X-API-Key": auth_server.key("dashboard")}, "demo", 403),
        ("read-only token", bearer(auth_server.token(scopes="read")), "demo", 403),
        ("token without scopes", bearer(auth_server.token(scopes=None)), "demo", 403),
        ("admin is not predict", bearer(auth_server.key("ops")), "demo", 403),
        ("predict:demo on demo", bearer(auth_server.key("demo-only")), "demo", 200),
        ("predict:demo on weather", bearer(auth_server.key("demo-only")), "weather", 403),
        ("predict:weather token on weather", bearer(auth_server.token(scopes="predict:weather")), "weather", 200),
        ("predict:demo on a model that does not exist", bearer(auth_server.key("demo-only")), "nope", 403),
        ("predict on both", bearer(auth_server.key("ci-pipeline")), "weather", 200),
    ]
    for case, headers, model, status in cases:
        if protocol == "v2_grpc":
            expected = {200: "OK", 403: "StatusCode.PERMISSION_DENIED"}[status]
            assert grpc_status(auth_server, {key.lower(): value for key, value in headers.items()}, model) == expected, case
            continue
        answer = predict(auth_server, protocol, headers, model)
        assert answer.status_code == status, (case, answer.text)
        if status == 403:
            assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"], case


def test_refusals_keep_each_protocols_error_shape(auth_server: AuthServer) -> None:
    assert predict(auth_server, "native", {}).json()["error"]["code"] == "unauthenticated"
    assert "credentials are required" in predict(auth_server, "kserve_v1", {}).json()["error"]
    assert "credentials are required" in predict(auth_server, "v2_rest", {}).json()["error"]
    assert predict(auth_server, "seldon", {}).json()["status"]["code"] == 401
    forbidden = predict(auth_server, "v2_rest", {"X-API-Key": auth_server.key("dashboard")}).json()["error"]
    assert "'dashboard' lacks the 'predict' scope" in forbidden


def test_grpc_metadata_rpcs_need_read_and_health_rpcs_stay_open(auth_server: AuthServer) -> None:
    with grpcclient.InferenceServerClient(auth_server.grpc) as client:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("demo")
        with pytest.raises(InferenceServerException) as refused:
            client.get_model_metadata("demo")
        assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
        with pytest.raises(InferenceServerException) as forbidden:
            client.get_model_metadata("demo", headers={"authorization": f"Bearer {auth_server.key('demo-only')}"})
        assert forbidden.value.status() == "StatusCode.PERMISSION_DENIED"
        assert client.get_model_metadata("demo", headers={"x-api-key": auth_server.key("dashboard")}).name == "demo"


def test_probes_stay_open_and_everything_else_needs_read(auth_server: AuthServer) -> None:
    with httpx.Client(base_url=auth_server.url, timeout=10) as client:
        for path in (
            "/api/health",
            "/api/health/ready",
            "/api/health/startup",
            "/v2/health/live",
            "/v2/health/ready",
            "/v2/models/demo/ready",
            "/health/ping",
        ):
            assert client.get(path).status_code == 200, path
        for path in ("/metrics", "/docs", "/openapi.json"):  # auth.public defaults to docs and metrics
            assert client.get(path).status_code == 200, path
        for path in (
            "/api/models",
            "/api/models/demo",
            "/api/models/demo/drift",
            "/v1/models/demo",
            "/v2",
            "/v2/models/demo",
            "/",
            "/ui/models/demo",
            "/no/such/path",
        ):
            anonymous = client.get(path)
            if path in ("/", "/ui/models/demo"):  # a page: a browser is sent to the login form, to come back after
                assert (anonymous.status_code, anonymous.headers["location"]) == (303, f"/ui/login?next={path}"), path
            else:
                assert anonymous.status_code == 401, path
            assert client.get(path, headers={"X-API-Key": auth_server.key("demo-only")}).status_code == 403, path
        for path in ("/api/models", "/api/models/demo", "/v1/models/demo", "/v2/models/demo", "/", "/ui/models/demo"):
            assert client.get(path, headers={"X-API-Key": auth_server.key("dashboard")}).status_code == 200, path
        assert client.get("/no/such/path", headers={"X-API-Key": auth_server.key("dashboard")}).status_code == 404


def test_admin_and_repository_endpoints_need_admin_from_any_address(auth_server: AuthServer) -> None:
    with httpx.Client(base_url=auth_server.url, timeout=30) as client:
        for path in ("/api/admin/models/demo/reload", "/v2/repository/index"):
            assert client.post(path).status_code == 401, path
            assert client.post(path, headers={"X-API-Key": auth_server.key("ci-pipeline")}).status_code == 403, path
            answer = client.post(path, headers={"X-API-Key": auth_server.key("ops")})
            assert answer.status_code == 200, (path, answer.text)


def test_changing_a_candidate_needs_admin_and_reading_it_needs_read(auth_server: AuthServer) -> None:
    """The rollout's endpoints (docs/rollout.md) under the scope gate; the live control: an admin's request reaches the
    rollout, which refuses it on its own grounds (production's own version is no candidate; there is none to abort)."""
    path = "/api/admin/models/demo/candidate"
    with httpx.Client(base_url=auth_server.url, timeout=30) as client:
        for method, body in (("PUT", {"ref": "production", "mode": "shadow"}), ("DELETE", {"reason": "test"})):
            assert client.request(method, path, json=body).status_code == 401, method
            for name in ("ci-pipeline", "dashboard", "demo-only"):
                assert client.request(method, path, json=body, headers={"X-API-Key": auth_server.key(name)}).status_code == 403, name
        put = client.put(path, json={"ref": "production", "mode": "shadow"}, headers={"X-API-Key": auth_server.key("ops")})
        assert (put.status_code, put.json()["error"]["code"]) == (409, "candidate_failed"), put.text
        assert "the version production serves" in put.json()["error"]["message"]
        delete = client.request("DELETE", path, json={"reason": "test"}, headers={"X-API-Key": auth_server.key("ops")})
        assert (delete.status_code, delete.json()["error"]["code"]) == (404, "no_candidate")
        assert client.get("/api/models/demo/candidate").status_code == 401
        assert client.get("/api/models/demo/candidate", headers={"X-API-Key": auth_server.key("demo-only")}).status_code == 403
        view = client.get("/api/models/demo/candidate", headers={"X-API-Key": auth_server.key("dashboard")})
        assert view.status_code == 200
        assert view.json()["candidate"] is None


def test_token_endpoint_logs_users_in_and_gives_no_hint_about_who_exists(auth_server: AuthServer) -> None:
    with httpx.Client(base_url=auth_server.url, timeout=30) as client:
        basic = client.post("/api/auth/token", auth=("alice", PASSWORDS["alice"]))
        assert basic.status_code == 200, basic.text
        issued = basic.json()
        assert issued["token_type"] == "bearer"
        assert issued["expires_in"] == 120
        assert basic.headers["Cache-Control"] == "no-store"
        claims = jwt.decode(issued["access_token"], auth_server.secret, algorithms=["HS256"], audience="sealserve", issuer="sealserve")
        assert claims["sub"] == "alice"
        assert set(claims["scope"].split()) == {"predict", "read"}
        assert claims["exp"] - claims["iat"] == 120
        assert predict(auth_server, "native", bearer(issued["access_token"])).status_code == 200

        form = {"grant_type": "password", "username": "bob", "password": PASSWORDS["bob"]}
        bob = client.post("/api/auth/token", data=form)  # bcrypt hash; the form Swagger UI's Authorize button sends
        assert bob.status_code == 200, bob.text
        assert predict(auth_server, "native", bearer(bob.json()["access_token"])).status_code == 403  # bob may only read
        narrowed = client.post("/api/auth/token", data={**form, "username": "alice", "password": PASSWORDS["alice"], "scope": "read"})
        assert narrowed.json()["scope"] == "read"

        wrong_password = client.post("/api/auth/token", auth=("alice", "not her password"))
        unknown_user = client.post("/api/auth/token", auth=("mallory", "whatever"))
        assert wrong_password.status_code == unknown_user.status_code == 401
        assert wrong_password.json() == unknown_user.json()
        assert client.post("/api/auth/token", data={**form, "grant_type": "client_credentials"}).status_code == 400
        assert client.post("/api/auth/token").status_code == 401


def test_failed_logins_are_rate_limited_per_user(auth_server: AuthServer) -> None:
    with httpx.Client(base_url=auth_server.url, timeout=30) as client:
        statuses = [client.post("/api/auth/token", auth=("carol", f"guess {attempt}")).status_code for attempt in range(MAX_USER_FAILURES)]
        assert statuses == [401] * MAX_USER_FAILURES
        limited = client.post("/api/auth/token", auth=("carol", "another guess"))
        assert limited.status_code == 429
        assert 0 < int(limited.headers["Retry-After"]) <= 600
        assert client.post("/api/auth/token", auth=("alice", PASSWORDS["alice"])).status_code == 200  # another user still logs in


def test_jwks_rotation_trusts_a_new_key_once_the_file_names_it(auth_server: AuthServer) -> None:
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = auth_server.rsa_token(kid="rsa-2", key=new_key)
    assert predict(auth_server, "native", bearer(token)).status_code == 401
    old_token = auth_server.rsa_token()
    assert predict(auth_server, "native", bearer(old_token)).status_code == 200
    auth_server.write_jwks(jwk(new_key, "rsa-2"), jwk(auth_server.ed_key, "ed-1"))  # rsa-1 retired
    wait_until(lambda: predict(auth_server, "native", bearer(token)).status_code == 200, timeout=15)
    assert predict(auth_server, "native", bearer(old_token)).status_code == 401  # a cached verification does not outlive its key
    auth_server.write_jwks(jwk(auth_server.rsa_key, "rsa-1"), jwk(new_key, "rsa-2"), jwk(auth_server.ed_key, "ed-1"))
    wait_until(lambda: predict(auth_server, "native", bearer(old_token)).status_code == 200, timeout=15)


def test_openapi_declares_the_schemes_for_the_authorize_button(auth_server: AuthServer) -> None:
    document = httpx.get(auth_server.url + "/openapi.json", timeout=10).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"]["name"] == "X-API-Key"
    assert schemes["password"]["flows"]["password"]["tokenUrl"] == "/api/auth/token"
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert {"password": ["predict"]} in infer["security"]
    assert "401" in infer["responses"]
    assert "security" not in document["paths"]["/api/health"]["get"]
    assert document["paths"]["/api/auth/token"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]


def test_access_lines_name_the_caller_and_no_secret_reaches_the_log(auth_server: AuthServer) -> None:
    token = auth_server.token(subject="audited-service")
    assert predict(auth_server, "native", bearer(token)).status_code == 200
    assert predict(auth_server, "native", bearer(auth_server.token(subject="late-service", exp=int(time.time()) - 600))).status_code == 401
    wait_until(lambda: '"subject":"token:audited-service"' in auth_server.server.log(), timeout=10)
    log = auth_server.server.log()
    assert "authentication failed: expired" in log
    assert "late-service" in log  # who failed, by subject
    for secret in [*auth_server.secrets(), token]:
        assert secret not in log


def test_the_admin_cli_sends_its_token_from_the_environment(auth_server: AuthServer) -> None:
    def admin(token: str | None) -> subprocess.CompletedProcess[str]:
        env = {key: value for key, value in os.environ.items() if key != "SEALSERVE_TOKEN"}
        if token is not None:
            env["SEALSERVE_TOKEN"] = token
        argv = [SEALSERVE, "admin", "reload", "demo", "--url", auth_server.url]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)

    refused = admin(None)
    assert refused.returncode == 1
    assert "401" in refused.stderr
    assert "SEALSERVE_TOKEN" in refused.stderr
    reloaded = admin(auth_server.key("ops"))
    assert reloaded.returncode == 0, reloaded.stderr
    assert "demo: serving 1.0.0" in reloaded.stdout


def test_grpc_calls_get_access_lines_with_their_code_caller_and_request_id(auth_server: AuthServer) -> None:
    grpc_infer(auth_server, {"authorization": f"Bearer {auth_server.key('ci-pipeline')}", "x-request-id": "grpc-audit-1"}, "weather")
    assert grpc_status(auth_server, {"x-request-id": "grpc-audit-2"}) == "StatusCode.UNAUTHENTICATED"

    def line(request_id: str) -> dict[str, Any] | None:
        for text in auth_server.server.log().splitlines():
            if f'"request_id":"{request_id}"' in text:
                parsed: dict[str, Any] = json.loads(text)
                return parsed
        return None

    wait_until(lambda: line("grpc-audit-2") is not None, timeout=10)
    served = line("grpc-audit-1")
    assert served is not None
    assert {key: served[key] for key in ("method", "path", "status", "model", "version", "protocol", "subject")} == {
        "method": "grpc",
        "path": "/inference.GRPCInferenceService/ModelInfer",
        "status": "OK",
        "model": "weather",
        "version": "1.0.0",
        "protocol": "v2_grpc",
        "subject": "api_key:ci-pipeline",
    }
    refused = line("grpc-audit-2")
    assert refused is not None
    assert (refused["status"], refused["subject"]) == ("UNAUTHENTICATED", None)


@pytest.mark.parametrize("protocol", ["native", "kserve_v1", "v2_rest", "seldon"])
def test_a_refusal_never_echoes_an_odd_model_name_into_a_header(auth_server: AuthServer, protocol: str) -> None:
    """A predict:demo caller naming a model with quotes, non-Latin-1 letters or a newline gets a clean 403, not a 500."""
    for name in ('a"b', "ſ", "x%0Ay", "é" * 300):
        path, body = PROTOCOLS[protocol](name, DEMO)
        answer = httpx.post(auth_server.url + path, json=body, headers=bearer(auth_server.key("demo-only")), timeout=10)
        assert answer.status_code == 403, (name, answer.text)
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="sealserve", error="insufficient_scope", scope="predict"'
    assert (
        grpc_status(auth_server, {"authorization": f"Bearer {auth_server.key('demo-only')}"}, "bad\nname") == "StatusCode.PERMISSION_DENIED"
    )
