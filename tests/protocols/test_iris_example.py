"""examples/iris_v2 end to end, as its README runs it: seed 004's KServe sklearn-iris example on sealserve."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.protocols.conftest import EXAMPLE, ROOT, IrisServer, load_example


def test_the_seed_request_gets_the_seed_answer(iris_server: IrisServer) -> None:
    curl = [
        "curl",
        "-s",
        "-H",
        "Content-Type: application/json",
        "-d",
        f"@{EXAMPLE / 'iris-input.json'}",
        f"{iris_server.url}/v2/models/sklearn-iris/infer",
    ]
    answer = subprocess.run(curl, capture_output=True, text=True, timeout=30, check=True).stdout
    assert json.loads(answer) == json.loads((EXAMPLE / "expected-output.json").read_text())


def test_the_example_client_gets_it_over_rest_and_grpc(iris_server: IrisServer) -> None:
    address = iris_server.url.removeprefix("http://")
    client = [sys.executable, str(EXAMPLE / "client.py"), "--http", address, "--grpc", f"127.0.0.1:{iris_server.grpc_port}"]
    result = subprocess.run(client, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    expected = {"predict": [1, 1], "model_version": "1.0.0"}
    assert json.loads(result.stdout) == {"http": expected, "grpc": expected}


def test_publish_script_is_idempotent(iris_home: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`publish.py --home HOME` again: the version exists, so only the alias is (re)pointed."""
    monkeypatch.setattr(sys, "argv", ["publish.py", "--home", str(iris_home)])
    load_example("publish").main()
    assert capsys.readouterr().out.startswith("sklearn-iris 1.0.0 is production in file://")
