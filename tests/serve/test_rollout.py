"""Shadow and canary of a candidate version in the real server (docs/rollout.md).

One workspace: demo 1.0.0 in production, 1.1.0 (`staging`) trained on a shifted target so it disagrees on a known
band of inputs, and 1.2.0 (`narrow`) whose schema refuses sizes above 5 (a candidate that fails every such request).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from tritonclient.grpc import InferenceServerClient, InferInput

from sealserve.serve.rollout.routing import bucket
from sealserve.store import LocalStore
from tests.serve.test_workers import two_workers
from tests.support.bundles import COLORS, FEATURE_OVERRIDES, Workspace, fitted_model, training_data
from tests.support.server import SEALSERVE, RunningServer, free_port, serve, wait_until

NAMES = {code: name for name, code in COLORS.items()}


def shifted_model() -> LogisticRegression:
    """Production's features with the boundary moved (size + color > 7.5 instead of 6): a band of disagreement."""
    frame, _ = training_data(seed=0)
    return LogisticRegression().fit(frame.to_numpy(dtype="float64"), ((frame["size"] + frame["color"]) > 7.5).astype(int))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    space = Workspace.create(tmp_path_factory.mktemp("rollout"))
    space.publish("demo", "1.0.0")
    space.publish("demo", "1.1.0", alias="staging", model=shifted_model())
    narrow = {**FEATURE_OVERRIDES, "size": {"minimum": 0.0, "maximum": 5.0}}
    space.publish("demo", "1.2.0", alias="narrow", features=narrow, seed=2)
    return space


def request_set() -> tuple[list[dict[str, Any]], int]:
    """100 records on which the candidate flips exactly 12 answers, each far from both models' boundaries."""
    frame, target = training_data(seed=0)
    production, candidate = fitted_model(frame, target), shifted_model()
    rows = np.array([[size, 3.0, color] for color in (0.0, 1.0, 2.0) for size in np.linspace(0.0, 10.0, 401)])
    first, second = production.predict_proba(rows)[:, 1], candidate.predict_proba(rows)[:, 1]
    clear = np.minimum(np.abs(first - 0.5), np.abs(second - 0.5)) > 0.05
    agree = np.flatnonzero(clear & ((first > 0.5) == (second > 0.5)))
    flip = np.flatnonzero(clear & ((first > 0.5) != (second > 0.5)))
    chosen = np.concatenate([agree[:: len(agree) // 88][:88], flip[:: len(flip) // 12][:12]])
    assert len(chosen) == 100
    records = [{"size": float(rows[i, 0]), "count": 3, "color": NAMES[rows[i, 2]]} for i in chosen]
    return records, 12


def v2_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    frame = pd.DataFrame(records)
    return {
        "inputs": [
            {"name": "size", "shape": [len(frame)], "datatype": "FP64", "data": frame["size"].tolist()},
            {"name": "count", "shape": [len(frame)], "datatype": "INT64", "data": frame["count"].tolist()},
            {"name": "color", "shape": [len(frame)], "datatype": "BYTES", "data": frame["color"].tolist()},
        ]
    }


def answers(http: httpx.Client, records: list[dict[str, Any]]) -> list[bytes]:
    """The bodies of the set sent one record at a time (native), then as one batch each over KServe V1 and V2 REST."""
    bodies = []
    for record in records:
        response = http.post("/api/models/demo/prediction", json=record)
        assert response.status_code == 200, response.text
        bodies.append(response.content)
    instances = [[record["size"], record["count"], record["color"]] for record in records]
    for path, body in (("/v1/models/demo:predict", {"instances": instances}), ("/v2/models/demo/infer", v2_body(records))):
        response = http.post(path, json=body)
        assert response.status_code == 200, response.text
        bodies.append(response.content)
    return bodies


def grpc_inputs() -> list[InferInput]:
    inputs = [InferInput("size", [1], "FP64"), InferInput("count", [1], "INT64"), InferInput("color", [1], "BYTES")]
    inputs[0].set_data_from_numpy(np.array([7.5], dtype=np.float64))
    inputs[1].set_data_from_numpy(np.array([3], dtype=np.int64))
    inputs[2].set_data_from_numpy(np.array(["BLUE"], dtype=np.object_))
    return inputs


def candidate(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/api/models/demo/candidate")
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def admin(*args: str, server: RunningServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SEALSERVE, "admin", *args, "--url", server.url], capture_output=True, text=True, check=False, timeout=120)


def metric(text: str, prefix: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, (prefix, lines)
    return float(lines[0].rsplit(" ", 1)[1])


def test_shadow_never_changes_an_answer_and_reports_the_known_agreement(workspace: Workspace, tmp_path: Path) -> None:
    records, flipped = request_set()
    config = workspace.config(tmp_path / "service.yaml", {"name": "demo"}, admin={"enabled": True})
    with serve(config, tmp_path) as server, server.client() as http:
        without = answers(http, records)
        assert candidate(http)["candidate"] is None

        started = admin("candidate", "set", "demo", "--ref", "staging", "--mode", "shadow", server=server)
        assert started.returncode == 0, started.stderr
        assert "candidate 1.1.0 (shadow, active)" in started.stdout

        assert answers(http, records) == without  # byte for byte, every protocol
        rows = 3 * len(records)
        wait_until(lambda: candidate(http)["comparison"]["since_start"]["rows"] == rows, timeout=20)
        view = candidate(http)
        since_start, window = view["comparison"]["since_start"], view["comparison"]["window"]
        assert since_start["agreement"] == pytest.approx((len(records) - flipped) / len(records))
        assert window["agreement"] == since_start["agreement"] == 0.88
        assert since_start["dropped"] == 0
        assert since_start["errors"] == 0
        assert sum(count for row in since_start["confusion"].values() for count in row.values()) == rows
        off_diagonal = sum(count for first, row in since_start["confusion"].items() for second, count in row.items() if first != second)
        assert off_diagonal == 3 * flipped
        assert 0 < since_start["probability_difference"]["mean"] < since_start["probability_difference"]["max"] <= 1
        assert window["psi"] is not None
        assert view["production"]["version"] == "1.0.0"
        assert view["candidate"]["version"] == "1.1.0"

        page = http.get("/ui/models/demo").text  # the web page's model view, production and candidate side by side
        assert '<td class="production-version">1.0.0</td><td class="candidate-version">1.1.0</td>' in page
        assert '<dd class="agreement">88.0% recent, 88.0% since set</dd>' in page

        scraped = http.get("/metrics").text
        assert metric(scraped, 'sealserve_candidate_agreement_ratio{model="demo"}') == 0.88
        assert metric(scraped, 'sealserve_candidate_requests_total{model="demo",role="shadow"}') == len(records) + 2

        aborted = admin("candidate", "abort", "demo", "--reason", "seen enough", server=server)
        assert aborted.returncode == 0, aborted.stderr
        view = candidate(http)
        assert view["candidate"] is None
        assert view["ended"][0] | {"at": None} == {
            "version": "1.1.0",
            "outcome": "aborted",
            "reason": "seen enough",
            "by": "admin",
            "at": None,
        }
        assert answers(http, records) == without


def test_canary_and_candidate_changes_hold_on_every_worker(workspace: Workspace, tmp_path: Path) -> None:
    """Two workers: a sticky key gets one version whichever worker answers, a pinned version is never rerouted, an
    abort and a new candidate reach both workers, and the shadow comparison adds both workers' rows up."""
    weight = 0.5
    config = workspace.config(
        tmp_path / "service.yaml",
        {"name": "demo", "candidate": {"ref": "staging", "mode": "canary", "weight": weight, "sticky_by": "header:X-User-ID"}},
        admin={"enabled": True},
    )
    record = {"size": 7.5, "count": 3, "color": "BLUE"}
    users = [f"user-{index}" for index in range(20)]
    expected = {user: "1.1.0" if bucket("demo", user) < weight else "1.0.0" for user in users}
    assert set(expected.values()) == {"1.0.0", "1.1.0"}  # the set exercises both versions

    def versions(fresh: httpx.Client, count: int = 40) -> set[str]:
        """Each request on a new connection, so both workers answer some."""
        return {fresh.post("/api/models/demo/prediction", json=record).json()["model_version"] for _ in range(count)}

    def view(fresh: httpx.Client) -> dict[str, Any]:
        shown: dict[str, Any] = fresh.get("/api/models/demo/candidate").json()
        return shown

    with two_workers(config, tmp_path) as server, server.fresh_client() as fresh:
        wait_until(lambda: (view(fresh)["candidate"] or {}).get("status") == "active")
        for user in users * 2:
            response = fresh.post("/api/models/demo/prediction", json=record, headers={"X-User-ID": user})
            assert response.status_code == 200
            assert response.headers["X-Model-Version"] == response.json()["model_version"] == expected[user], user
            v2 = fresh.post("/v2/models/demo/infer", json=v2_body([record]), headers={"X-User-ID": user})
            assert v2.json()["model_version"] == expected[user]
        chosen = next(user for user in users if expected[user] == "1.1.0")
        pinned = fresh.post("/v2/models/demo/versions/1.0.0/infer", json=v2_body([record]), headers={"X-User-ID": chosen})
        assert pinned.status_code == 200
        assert pinned.json()["model_version"] == "1.0.0"

        aborted = admin("candidate", "abort", "demo", "--reason", "two workers", server=server)
        assert aborted.returncode == 0, aborted.stderr
        assert versions(fresh) == {"1.0.0"}
        everyone = admin("candidate", "set", "demo", "--ref", "staging", "--mode", "canary", "--weight", "1", server=server)
        assert everyone.returncode == 0, everyone.stderr
        assert versions(fresh) == {"1.1.0"}

        shadow = admin("candidate", "set", "demo", "--ref", "staging", "--mode", "shadow", server=server)
        assert shadow.returncode == 0, shadow.stderr
        for _ in range(4):  # once the call returns, no worker's view still counts the canary it replaced
            assert view(fresh)["comparison"]["since_start"]["requests"] == 0
        assert versions(fresh) == {"1.0.0"}
        wait_until(lambda: view(fresh)["comparison"]["since_start"]["requests"] == 40)
        for _ in range(4):  # whichever worker answers the view, it counts both workers' rows
            comparison = view(fresh)["comparison"]
            assert comparison["since_start"]["requests"] == 40
            assert comparison["window"]["rows"] == 40


def test_a_failing_canary_aborts_by_its_guardrail_and_a_promoted_candidate_becomes_production(workspace: Workspace, tmp_path: Path) -> None:
    """Production keeps answering while a candidate that refuses most inputs is aborted; then promotion moves the
    store's alias (`sealserve promote`, a store of this test's own) and a reload serves the candidate as production;
    the server promotes by itself only a candidate set with allow_promote."""
    shutil.copytree(workspace.root, tmp_path / "space")
    space = dataclasses.replace(
        workspace, root=tmp_path / "space", keyring=tmp_path / "space" / "keyring.json", store=LocalStore(tmp_path / "space" / "store")
    )
    config = space.config(tmp_path / "service.yaml", {"name": "demo"}, admin={"enabled": True})
    guardrails = {"max_error_rate": 0.02, "max_p99_ratio": 100.0, "min_requests": 20}
    grpc_port = free_port()
    with serve(config, tmp_path, extra_args=("--grpc-port", str(grpc_port))) as server, server.client() as http:
        response = http.put(
            "/api/admin/models/demo/candidate", json={"ref": "narrow", "mode": "canary", "weight": 1.0, "guardrails": guardrails}
        )
        assert response.status_code == 200, response.text
        small = http.post("/api/models/demo/prediction", json={"size": 2.0, "count": 3, "color": "RED"})
        assert small.json()["model_version"] == "1.2.0"  # live control: the candidate answers what it accepts
        for _ in range(25):
            response = http.post("/api/models/demo/prediction", json={"size": 7.5, "count": 3, "color": "BLUE"})
            assert response.status_code == 200
            assert response.json()["model_version"] == "1.0.0"
        view = candidate(http)
        assert view["candidate"] is None
        ended = view["ended"][0]
        assert (ended["version"], ended["outcome"], ended["by"]) == ("1.2.0", "aborted", "guardrail")
        assert "max_error_rate: 19 of 20 canary requests failed" in ended["reason"]  # judged at min_requests: the control and 19
        assert metric(http.get("/metrics").text, 'sealserve_candidate_aborts_total{by="guardrail",model="demo"}') == 1
        assert "candidate 1.2.0 aborted by guardrail" in server.log()

        started = admin("candidate", "set", "demo", "--ref", "staging", "--mode", "canary", "--weight", "1", server=server)
        assert started.returncode == 0, started.stderr
        with InferenceServerClient(f"127.0.0.1:{grpc_port}") as grpc:  # gRPC goes through the same data plane
            assert grpc.infer("demo", grpc_inputs(), headers={"x-user-id": "anyone"}).get_response().model_version == "1.1.0"
            assert grpc.infer("demo", grpc_inputs(), model_version="1.0.0").get_response().model_version == "1.0.0"  # never rerouted
        refused = http.put("/api/admin/models/demo/candidate", json={"ref": "1.9.0"})
        assert refused.status_code == 409
        assert "1.9.0" in refused.json()["error"]["message"]
        assert candidate(http)["candidate"]["version"] == "1.1.0"  # a refused candidate leaves the current one

        not_allowed = admin("candidate", "promote", "demo", server=server)  # this candidate was set without allow_promote
        assert not_allowed.returncode == 1
        assert "candidate.allow_promote is false" in not_allowed.stderr
        assert "sealserve promote demo 1.1.0 production" in not_allowed.stderr
        assert space.store.resolve("demo", "production") == "1.0.0"

        promoted = subprocess.run(
            [SEALSERVE, "promote", "demo", "1.1.0", "production", space.store.url], capture_output=True, text=True, check=False
        )
        assert promoted.returncode == 0, promoted.stderr
        reloaded = admin("reload", "demo", server=server)
        assert reloaded.returncode == 0, reloaded.stderr
        assert http.post("/api/models/demo/prediction", json={"size": 7.5, "count": 3, "color": "BLUE"}).json()["model_version"] == "1.1.0"
        view = candidate(http)
        assert view["production"]["version"] == "1.1.0"
        assert view["candidate"] is None
        assert view["ended"][0]["outcome"] == "promoted"

        gone = http.request("DELETE", "/api/admin/models/demo/candidate")
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "no_candidate"

        allowed = http.put("/api/admin/models/demo/candidate", json={"ref": "1.2.0", "mode": "shadow", "allow_promote": True})
        assert allowed.status_code == 200, allowed.text
        by_server = admin("candidate", "promote", "demo", server=server)  # the server moves the alias itself, then reloads
        assert by_server.returncode == 0, by_server.stderr
        assert "production → 1.2.0" in by_server.stdout
        assert space.store.resolve("demo", "production") == "1.2.0"
        view = candidate(http)
        assert (view["production"]["version"], view["candidate"], view["ended"][0]["outcome"]) == ("1.2.0", None, "promoted")
        small = http.post("/api/models/demo/prediction", json={"size": 2.0, "count": 3, "color": "RED"})
        assert small.json()["model_version"] == "1.2.0"
