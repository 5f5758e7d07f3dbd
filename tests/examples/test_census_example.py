"""examples/census_income end to end (issue 9, seeds 001 and 003): publish.py --fast trains both models, packs them
in the default safe format, signs and pushes them; `sealserve verify` checks them; the example's service.yaml serves
them behind its login, as the README runs it; the analyst logs in, and every protocol answers the decoded labels
">50K" / "<=50K" to the token and refuses a request without one or with an expired one."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import yaml
from tritonclient.utils import InferenceServerException

from tests.support.server import SEALSERVE, RunningServer, free_port, serve

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "census_income"
NAMES = ("census_income", "census_dict")
LABELS = ["<=50K", ">50K"]
PASSWORD = "a-test-only-passphrase"  # the analyst's password in this test; the server gets its hash
# Seed 003 posts a list of dict records; these are census people. YOUNG is adult.test's first row (<=50K), EXECUTIVE a
# made-up high earner (capital gains alone put nearly everyone above $50K), UNRECORDED leaves out what the census may lack.
YOUNG = {
    "age": 25,
    "workclass": "Private",
    "education": "11th",
    "marital_status": "Never-married",
    "occupation": "Machine-op-inspct",
    "relationship": "Own-child",
    "capital_gain": 0,
    "capital_loss": 0,
    "hours_per_week": 40,
    "native_country": "United-States",
}
EXECUTIVE = {
    "age": 52,
    "workclass": "Self-emp-inc",
    "education": "Masters",
    "marital_status": "Married-civ-spouse",
    "occupation": "Exec-managerial",
    "relationship": "Husband",
    "capital_gain": 15024,
    "capital_loss": 0,
    "hours_per_week": 60,
    "native_country": "United-States",
}
UNRECORDED = {key: value for key, value in YOUNG.items() if key not in ("workclass", "occupation", "native_country")}
PEOPLE = [YOUNG, EXECUTIVE]


@dataclass(frozen=True)
class Census:
    home: Path
    server: RunningServer
    grpc: str
    jwt_secret: str
    token: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def password_hash(password: str) -> subprocess.Popen[str]:
    """`sealserve auth hash-password`, as the README runs it (the password on stdin); it prints the users entry."""
    command = [SEALSERVE, "auth", "hash-password", "--username", "analyst", "--scope", "predict", "--scope", "read"]
    hashing = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert hashing.stdin is not None
    hashing.stdin.write(password + "\n")
    hashing.stdin.close()
    return hashing


@pytest.fixture(scope="module")
def census(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Census]:
    """Publish as the README does (fast), serve the example's service.yaml with its secrets in the environment on free
    loopback ports, and log in as the analyst."""
    home = tmp_path_factory.mktemp("census-home")
    hashing = password_hash(PASSWORD)  # meanwhile
    published = subprocess.run(
        [sys.executable, str(EXAMPLE / "publish.py"), "--home", str(home), "--fast"], cwd=ROOT, capture_output=True, text=True
    )
    assert published.returncode == 0, published.stdout + published.stderr
    assert hashing.stdout is not None
    entry, failure = hashing.stdout.read(), hashing.stderr.read() if hashing.stderr else ""
    assert hashing.wait() == 0, failure
    [user] = yaml.safe_load(entry)
    secret, grpc_port = secrets.token_urlsafe(48), free_port()
    env = {
        "SEALSERVE_HOME": str(home),
        "SEALSERVE_GRPC_PORT": str(grpc_port),
        "SEALSERVE_JWT_SECRET": secret,
        "CENSUS_ANALYST_PASSWORD_HASH": user["password_hash"],
    }
    with serve(EXAMPLE / "service.yaml", home, env=env) as server:
        login = httpx.post(f"{server.url}/api/auth/token", auth=("analyst", PASSWORD), timeout=30)
        assert login.status_code == 200, login.text
        yield Census(home, server, f"127.0.0.1:{grpc_port}", secret, login.json()["access_token"])
        assert "Traceback" not in server.log(), server.log()
        assert PASSWORD not in server.log()
        assert secret not in server.log()


@pytest.fixture
def http(census: Census) -> Iterator[httpx.Client]:
    """A client that sends the analyst's token, as the README's curl commands do."""
    with httpx.Client(base_url=census.server.url, timeout=10, headers=census.bearer) as client:
        yield client


def expired_token(census: Census) -> str:
    """A token the server would have issued to the analyst, expired two minutes ago (past the 30 s of allowed skew)."""
    now = int(time.time())
    claims = {"sub": "analyst", "scope": "predict read", "iss": "sealserve", "aud": "sealserve", "iat": now - 1020, "exp": now - 120}
    return jwt.encode(claims, census.jwt_secret, algorithm="HS256")


def v2_inputs(people: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One [N] tensor per feature: INT64 for the numbers, BYTES for the categories (null where not recorded)."""
    names = list(EXECUTIVE)
    return [
        {
            "name": name,
            "shape": [len(people)],
            "datatype": "BYTES" if isinstance(EXECUTIVE[name], str) else "INT64",
            "data": [person.get(name) for person in people],
        }
        for name in names
    ]


def grpc_inputs(people: list[dict[str, Any]]) -> list[grpcclient.InferInput]:
    """The same tensors as tritonclient sends them (binary, raw_input_contents)."""
    tensors = []
    for name, example in EXECUTIVE.items():
        column = [person[name] for person in people]
        tensor = grpcclient.InferInput(name, [len(people)], "BYTES" if isinstance(example, str) else "INT64")
        tensor.set_data_from_numpy(np.array(column, dtype=object if isinstance(example, str) else np.int64))
        tensors.append(tensor)
    return tensors


def test_the_service_declares_the_login_contract_of_issue_9() -> None:
    """The block's exact shape is the issue's contract; the other tests serve it."""
    auth = yaml.safe_load((EXAMPLE / "service.yaml").read_text())["auth"]
    assert auth == {
        "enabled": True,
        "jwt": {"secret": "${SEALSERVE_JWT_SECRET}", "issuer": "sealserve", "audience": "sealserve", "token_ttl": 900},
        "users": [{"username": "analyst", "password_hash": "${CENSUS_ANALYST_PASSWORD_HASH}", "scopes": ["predict", "read"]}],
    }


@pytest.mark.parametrize("name", NAMES)
def test_both_bundles_are_skops_signed_with_reports_and_verify(census: Census, name: str) -> None:
    folder = census.home / "store" / name / "1.0.0"
    verified = subprocess.run(
        [SEALSERVE, "verify", str(folder), "--keyring", str(census.home / "keyring.json"), "--name", name, "--version", "1.0.0"],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"verified {name} 1.0.0 (skops), signer census-example-key" in verified.stdout
    assert zipfile.is_zipfile(folder / "model.skops")
    assert not (folder / "model.joblib").exists()
    metadata = json.loads((folder / "sealserve.json").read_text())
    assert metadata["metrics"]["roc_auc"] > 0.88
    assert metadata["metrics"]["accuracy"] > 0.84
    assert {"reports/profile.html", "reports/evaluation.html", "reports/roc_curve.png"} <= set(metadata["reports"])
    assert (folder / "reports" / "roc_curve.png").read_bytes().startswith(b"\x89PNG")
    assert metadata["input_shape"] == {"census_income": "frame", "census_dict": "records"}[name]
    assert [item["label"] for item in metadata["output"]["classes"]] == LABELS


def test_categories_are_enums_of_readable_labels_and_unrecorded_ones_are_nullable(http: httpx.Client) -> None:
    schema = http.get("/api/models/census_income").json()["input_schema"]["properties"]
    assert "Bachelors" in schema["education"]["enum"]
    assert "Married-civ-spouse" in schema["marital_status"]["enum"]
    workclass = schema["workclass"]["anyOf"]
    assert {"type": "null"} in workclass
    assert "Self-emp-inc" in next(item["enum"] for item in workclass if "enum" in item)
    assert schema["age"]["type"] == "integer"
    features = {item["name"]: item for item in http.get("/api/models/census_dict").json()["metadata"]["features"]}
    assert {name for name, item in features.items() if item["nullable"]} == {"workclass", "occupation", "native_country"}


def test_native_single_and_batch_answer_the_decoded_labels(http: httpx.Client) -> None:
    single = http.post("/api/models/census_income/prediction", json=EXECUTIVE)
    assert single.status_code == 200, single.text
    assert single.json()["output"]["prediction"] == ">50K"
    batch = http.post("/api/models/census_income/predictions", json=[*PEOPLE, UNRECORDED])
    assert batch.status_code == 200, batch.text
    outputs = batch.json()["outputs"]
    assert [output["prediction"] for output in outputs] == [*LABELS, "<=50K"]
    assert all(set(output["probabilities"]) == set(LABELS) for output in outputs)


@pytest.mark.parametrize("name", NAMES)
def test_kserve_v1_answers_the_decoded_labels_not_class_codes(http: httpx.Client, name: str) -> None:
    """census_dict's classes are 0/1: V1 answers the labels its bundle declares, as census_income's own string classes."""
    single = http.post(f"/v1/models/{name}:predict", json={"instances": [EXECUTIVE]})
    assert single.json() == {"predictions": [">50K"], "model_name": name, "model_version": "1.0.0"}
    batch = http.post(f"/v1/models/{name}:predict", json={"instances": [*PEOPLE, UNRECORDED]})
    assert batch.status_code == 200, batch.text
    assert batch.json()["predictions"] == [*LABELS, "<=50K"]


def test_v2_rest_answers_the_decoded_labels(http: httpx.Client) -> None:
    single = http.post("/v2/models/census_income/infer", json={"inputs": v2_inputs([EXECUTIVE])})
    assert single.status_code == 200, single.text
    assert single.json()["outputs"] == [{"name": "predict", "datatype": "BYTES", "shape": [1], "data": [">50K"]}]
    batch = http.post("/v2/models/census_income/infer", json={"inputs": v2_inputs([*PEOPLE, UNRECORDED])})
    assert batch.json()["outputs"][0]["data"] == [*LABELS, "<=50K"]
    coded = http.post(
        "/v2/models/census_dict/infer", json={"inputs": v2_inputs(PEOPLE), "outputs": [{"name": "label"}, {"name": "predict"}]}
    )
    outputs = {output["name"]: output for output in coded.json()["outputs"]}
    assert outputs["label"]["data"] == LABELS
    assert (outputs["predict"]["datatype"], outputs["predict"]["data"]) == ("INT64", [0, 1])  # V2 `predict`: the class values


def test_v2_grpc_answers_the_decoded_labels(census: Census) -> None:
    client = grpcclient.InferenceServerClient(census.grpc)
    single = client.infer("census_income", grpc_inputs([EXECUTIVE]), headers=census.bearer)
    assert single.as_numpy("predict").tolist() == [b">50K"]
    assert single.get_response().model_version == "1.0.0"
    batch = client.infer("census_income", grpc_inputs(PEOPLE), headers=census.bearer)
    assert batch.as_numpy("predict").tolist() == [label.encode() for label in LABELS]
    coded = client.infer("census_dict", grpc_inputs(PEOPLE), outputs=[grpcclient.InferRequestedOutput("label")], headers=census.bearer)
    assert coded.as_numpy("label").tolist() == [label.encode() for label in LABELS]


def test_seldon_names_the_probabilities_by_label(http: httpx.Client) -> None:
    body = {"data": {"names": list(EXECUTIVE), "ndarray": [list(EXECUTIVE.values())]}}
    answer = http.post("/seldon/default/census_income/api/v1.0/predictions", json=body).json()
    assert answer["data"]["names"] == LABELS
    [[low, high]] = answer["data"]["ndarray"]
    assert high > low


def test_the_dict_model_answers_seed_003_records_with_a_probability(http: httpx.Client) -> None:
    response = http.post("/api/models/census_dict/predictions", json=[*PEOPLE, UNRECORDED])
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    chances = [output["probabilities"][">50K"] for output in outputs]
    assert all(0.0 <= chance <= 1.0 for chance in chances)
    assert all(sum(output["probabilities"].values()) == pytest.approx(1.0) for output in outputs)
    assert chances[1] > 0.5 > chances[0]
    assert [output["prediction"] for output in outputs] == [*LABELS, "<=50K"]


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_category_is_refused_naming_the_field_on_every_protocol(census: Census, http: httpx.Client, name: str) -> None:
    stranger = {**YOUNG, "workclass": "Astronaut"}
    single = http.post(f"/api/models/{name}/prediction", json=stranger)
    assert single.status_code == 422, single.text
    assert [detail["loc"] for detail in single.json()["error"]["details"]] == [["workclass"]]
    batch = http.post(f"/api/models/{name}/predictions", json=[YOUNG, stranger])
    assert batch.status_code == 422
    assert [detail["loc"] for detail in batch.json()["error"]["details"]] == [[1, "workclass"]]
    v1 = http.post(f"/v1/models/{name}:predict", json={"instances": [stranger]})
    assert v1.status_code == 400
    assert "'workclass': Input should be 'Federal-gov'" in v1.json()["error"]
    v2 = http.post(f"/v2/models/{name}/infer", json={"inputs": v2_inputs([stranger])})
    assert v2.status_code == 400
    assert "workclass" in v2.json()["error"]
    with pytest.raises(InferenceServerException) as refused:
        grpcclient.InferenceServerClient(census.grpc).infer(name, grpc_inputs([stranger]), headers=census.bearer)
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "workclass" in str(refused.value.message())


def test_only_the_fields_the_census_left_unrecorded_may_be_null(http: httpx.Client) -> None:
    assert http.post("/api/models/census_income/prediction", json={**YOUNG, "occupation": None}).status_code == 200
    refused = http.post("/api/models/census_income/prediction", json={**YOUNG, "education": None})
    assert refused.status_code == 422
    assert [detail["loc"] for detail in refused.json()["error"]["details"]] == [["education"]]


def test_the_analyst_logs_in_for_a_short_lived_bearer_token(census: Census) -> None:
    login = httpx.post(f"{census.server.url}/api/auth/token", auth=("analyst", PASSWORD))
    assert login.status_code == 200, login.text
    body = login.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("bearer", 900, "predict read")
    assert login.headers["cache-control"] == "no-store"
    claims = jwt.decode(body["access_token"], census.jwt_secret, algorithms=["HS256"], audience="sealserve", issuer="sealserve")
    assert claims["sub"] == "analyst"
    wrong = httpx.post(f"{census.server.url}/api/auth/token", auth=("analyst", "not-the-passphrase"))
    assert wrong.status_code == 401
    assert "access_token" not in wrong.text


@pytest.mark.parametrize("credential", ["none", "expired"])
def test_every_protocol_refuses_a_request_without_a_valid_token(census: Census, credential: str) -> None:
    headers = {} if credential == "none" else {"authorization": f"Bearer {expired_token(census)}"}
    with httpx.Client(base_url=census.server.url, timeout=10, headers=headers) as anonymous:
        native = anonymous.post("/api/models/census_income/prediction", json=EXECUTIVE)
        batch = anonymous.post("/api/models/census_dict/predictions", json=PEOPLE)
        v1 = anonymous.post("/v1/models/census_income:predict", json={"instances": PEOPLE})
        v2 = anonymous.post("/v2/models/census_income/infer", json={"inputs": v2_inputs(PEOPLE)})
    for response in (native, batch, v1, v2):
        assert response.status_code == 401, response.text
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer")
        assert ('error="invalid_token"' in challenge) is (credential == "expired")
        assert "<=50K" not in response.text
    with pytest.raises(InferenceServerException) as refused:
        grpcclient.InferenceServerClient(census.grpc).infer("census_income", grpc_inputs(PEOPLE), headers=headers)
    assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
