"""Schemathesis against the real server's /openapi.json: no answer is a server error, and every answer has a documented
status, content type and body shape. Positive and negative data for every operation (the examples, coverage and fuzzing
phases, as `schemathesis run` would) from a fixed seed, bounded by a number of examples per operation rather than by a
time budget (which schemathesis would fill by fuzzing again). A failure prints each failed check with a curl command.

The admin API and the V2 repository extension (loopback only, like this test) change what the server serves: an unload
makes every later inference a 503. So they are fuzzed on their own, after which the model is loaded again.

(schemathesis.pytest.from_fixture does not run under pytest 9, which dropped the node attribute it rewrites, so the
engine that `schemathesis run` drives is called directly.)
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
import schemathesis.checks
import schemathesis.engine
from schemathesis.engine import Status, events

from tests.protocols.conftest import DEMO_RECORD
from tests.support.bundles import Workspace
from tests.support.server import RunningServer, serve

SEED = 20261130
MAX_EXAMPLES = 40  # per operation and generation mode, in the fuzzing phase
MIN_CASES = 1000
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance")
MAX_BATCH = 20


def config(max_examples: int = MAX_EXAMPLES) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "request-timeout": 10,
            "generation": {"mode": "all", "max-examples": max_examples, "database": "none", "deterministic": True},
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )


@dataclass
class Findings:
    """What one engine run saw: cases per operation, answers per status, and each failed check with its reproduction."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    @property
    def report(self) -> str:
        return "\n\n".join(sorted(self.failures)) + f"\n\n{len(self.failures)} failed checks; errors: {self.errors}"


def fuzz(schema: schemathesis.BaseSchema) -> Findings:
    found = Findings()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            found.cases[recorder.label] += len(recorder.cases)
            found.statuses.update(item.response.status_code for item in recorder.interactions.values() if item.response is not None)
            for check in (check for checks in recorder.checks.values() for check in checks):
                if check.status == Status.FAILURE and check.failure_info is not None:
                    failure = check.failure_info.failure
                    found.failures.add(
                        f"{recorder.label} [{check.name}] {failure.title}: {failure.message}\n{check.failure_info.code_sample}"
                    )
        elif isinstance(event, events.NonFatalError):
            found.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            found.errors.append(repr(event.exception))
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("fuzz")
    space = Workspace.create(root)
    space.publish("demo", "1.0.0")
    config = space.config(
        root / "service.yaml",
        {"name": "demo"},
        limits={"max_batch_size": MAX_BATCH},
        admin={"enabled": True},
        protocols={"v2_repository": True},
    )
    with serve(config, root) as running:
        yield running
        assert "Traceback" not in running.log(), running.log()


@pytest.fixture(scope="module")
def document(server: RunningServer) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/openapi.json", timeout=10)
    assert response.status_code == 200
    return dict(response.json())


def contract(server: RunningServer, document: dict[str, Any], max_examples: int = MAX_EXAMPLES) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_dict(copy.deepcopy(document), config=config(max_examples))
    schema.config.update(base_url=server.url)
    return schema


STATEFUL = "^/(api/admin|v2/repository)/"


def operations(document: dict[str, Any], *, stateful: bool = False) -> set[str]:
    return {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if bool(re.match(STATEFUL, path)) == stateful
    }


def test_every_answer_to_generated_requests_is_in_the_contract(server: RunningServer, document: dict[str, Any]) -> None:
    found = fuzz(contract(server, document).exclude(path_regex=STATEFUL))
    print(f"\n{sum(found.cases.values())} cases, answers {dict(sorted(found.statuses.items()))}")
    assert not found.failures, found.report
    assert not found.errors, found.errors
    assert set(found.cases) == operations(document), "every operation was exercised"
    assert sum(found.cases.values()) >= MIN_CASES, found.cases
    # Negative data reached every family of refusals, and valid data got predictions.
    assert {200, 400, 404, 413, 415, 422} <= set(found.statuses), found.statuses
    assert not any(status >= 500 for status in found.statuses), found.statuses


def validated(schema: schemathesis.BaseSchema, method: str, path: str, **request: Any) -> int:
    """Send one request as a Case and run the same checks on its answer; the status it got."""
    if "body" in request:
        request.setdefault("media_type", "application/json")
    case = schema[path][method].Case(**request)
    response = case.call_and_validate(checks=[getattr(schemathesis.checks, name) for name in CHECKS])
    return int(response.status_code)


def test_valid_requests_on_every_protocol_get_answers_in_the_contract(server: RunningServer, document: dict[str, Any]) -> None:
    """The fuzzer rarely names a real model on the shared protocol routes; these do, so each 200 body is checked too."""
    schema = contract(server, document)
    demo = {"name": "demo"}
    row = list(DEMO_RECORD.values())
    tensors = {
        "inputs": [
            {"name": "size", "shape": [1], "datatype": "FP64", "data": [7.5]},
            {"name": "count", "shape": [1], "datatype": "INT64", "data": [3]},
            {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["BLUE"]},
        ]
    }
    seldon = {"data": {"names": list(DEMO_RECORD), "ndarray": [row]}, "meta": {"tags": {"run": 1}}}
    answers = {
        ("GET", "/api/models/{name}", "demo"): validated(schema, "GET", "/api/models/{name}", path_parameters=demo),
        ("POST", "/api/models/demo/prediction"): validated(schema, "POST", "/api/models/demo/prediction", body=DEMO_RECORD),
        ("POST", "/api/models/demo/predictions"): validated(schema, "POST", "/api/models/demo/predictions", body=[DEMO_RECORD] * 2),
        ("POST", "/api/models/demo/predictions", "dataframe_split"): validated(
            schema, "POST", "/api/models/demo/predictions", body={"dataframe_split": {"columns": list(DEMO_RECORD), "data": [row, row]}}
        ),
        ("POST", "/api/models/demo/predictions", "inputs"): validated(
            schema, "POST", "/api/models/demo/predictions", body={"inputs": {name: [value] * 2 for name, value in DEMO_RECORD.items()}}
        ),
        ("GET", "/v1/models/{name}"): validated(schema, "GET", "/v1/models/{name}", path_parameters=demo),
        ("POST", "/v1/models/{name}:predict"): validated(
            schema, "POST", "/v1/models/{name}:predict", path_parameters=demo, body={"instances": [row, DEMO_RECORD]}
        ),
        ("GET", "/v2/models/{name}"): validated(schema, "GET", "/v2/models/{name}", path_parameters=demo),
        ("GET", "/v2/models/{name}/ready"): validated(schema, "GET", "/v2/models/{name}/ready", path_parameters=demo),
        ("GET", "/v2/models/{name}/versions/{version}"): validated(
            schema, "GET", "/v2/models/{name}/versions/{version}", path_parameters={**demo, "version": "1.0.0"}
        ),
        ("POST", "/v2/models/{name}/infer"): validated(schema, "POST", "/v2/models/{name}/infer", path_parameters=demo, body=tensors),
        ("POST", "/v2/models/{name}/versions/{version}/infer"): validated(
            schema, "POST", "/v2/models/{name}/versions/{version}/infer", path_parameters={**demo, "version": "1.0.0"}, body=tensors
        ),
        ("POST", "/api/v1.0/predictions"): validated(schema, "POST", "/api/v1.0/predictions", body=seldon),
        ("POST", "/seldon/{namespace}/{name}/api/v1.0/predictions"): validated(
            schema, "POST", "/seldon/{namespace}/{name}/api/v1.0/predictions", path_parameters={**demo, "namespace": "ns"}, body=seldon
        ),
    }
    assert set(answers.values()) == {200}, answers
    # Refusals in each protocol's own shape, on routes the fuzzer mostly sees with unknown names.
    refusals = {
        "native 422": validated(schema, "POST", "/api/models/demo/predictions", body=[{}] * 3),
        "native 413": validated(schema, "POST", "/api/models/demo/predictions", body=[DEMO_RECORD] * (MAX_BATCH + 1)),
        "v1 400": validated(schema, "POST", "/v1/models/{name}:predict", path_parameters=demo, body={"instances": [[1]]}),
        "v2 404": validated(schema, "GET", "/v2/models/{name}/versions/{version}", path_parameters={**demo, "version": "9"}),
        "v2 413": validated(
            schema,
            "POST",
            "/v2/models/{name}/infer",
            path_parameters=demo,
            body={"inputs": [{**item, "shape": [MAX_BATCH + 1], "data": item["data"] * (MAX_BATCH + 1)} for item in tensors["inputs"]]},
        ),
        "seldon 400": validated(
            schema, "POST", "/api/v1.0/predictions", body={"data": {"ndarray": [[1]], "tensor": {"shape": [1], "values": [1]}}}
        ),
        # A name holding a slash matches no route: the router's 404 is still in the protocol's shape.
        "v1 slash 404": validated(schema, "GET", "/v1/models/{name}", path_parameters={"name": "a/b"}),
        "v2 slash 404": validated(schema, "POST", "/v2/models/{name}/infer", path_parameters={"name": "a/b"}, body=tensors),
        "seldon slash 404": validated(
            schema,
            "POST",
            "/seldon/{namespace}/{name}/api/v1.0/predictions",
            path_parameters={"namespace": "ns", "name": "a/b"},
            body=seldon,
        ),
    }
    assert refusals == {
        "native 422": 422,
        "native 413": 413,
        "v1 400": 400,
        "v2 404": 404,
        "v2 413": 413,
        "seldon 400": 400,
        "v1 slash 404": 404,
        "v2 slash 404": 404,
        "seldon slash 404": 404,
    }


def test_the_checks_fail_on_an_answer_the_contract_does_not_document(server: RunningServer, document: dict[str, Any]) -> None:
    """Live control: the same run against a contract missing one answer, and with a wrong error shape, reports both."""
    broken = copy.deepcopy(document)
    del broken["paths"]["/v1/models/{name}"]["get"]["responses"]["404"]
    broken["components"]["schemas"]["SeldonError"]["required"] = ["error"]
    schema = contract(server, broken, max_examples=5).include(path=["/v1/models/{name}", "/seldon/{namespace}/{name}/api/v1.0/predictions"])
    found = fuzz(schema)
    assert any("GET /v1/models/{name} [status_code_conformance]" in failure for failure in found.failures), found.report
    assert any("[response_schema_conformance]" in failure and "SeldonError" in failure for failure in found.failures), found.report


def test_the_admin_and_repository_operations_answer_within_the_contract(server: RunningServer, document: dict[str, Any]) -> None:
    try:
        found = fuzz(contract(server, document).include(path_regex=STATEFUL))
        assert not found.failures, found.report
        assert not found.errors, found.errors
        assert set(found.cases) == operations(document, stateful=True)
        assert {200, 404, 422} <= set(found.statuses), found.statuses
    finally:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            client.delete("/api/admin/models/demo/pin")
            assert client.post("/v2/repository/models/demo/load").status_code == 200
    assert httpx.get(f"{server.url}/api/health/ready", timeout=10).status_code == 200
