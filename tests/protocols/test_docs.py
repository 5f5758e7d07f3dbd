"""Every example in docs/protocols.md runs against the iris example server and gets the documented answer."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from sealserve.serve.config import parse_config
from tests.protocols.conftest import ROOT, IrisServer

DOC = ROOT / "docs" / "protocols.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SETUP = [
    "python examples/iris_v2/publish.py --home .sealserve-iris",
    "sealserve serve examples/iris_v2/service.yaml",
]  # what the iris_server fixture does (publish with the example's code, serve its service.yaml)


@dataclass(frozen=True)
class Block:
    language: str
    text: str


def blocks() -> list[Block]:
    return [Block(match.group(1), match.group(2)) for match in FENCE.finditer(DOC.read_text())]


def examples() -> list[tuple[Block, Block | None]]:
    """Each command block with the output block right after it (json or text), if any."""
    found = blocks()
    pairs = []
    for index, block in enumerate(found):
        if block.language in ("sh", "python", "yaml"):
            following = found[index + 1] if index + 1 < len(found) and found[index + 1].language in ("json", "text") else None
            pairs.append((block, following))
    return pairs


def same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        return isinstance(actual, int | float) and abs(actual - expected) <= 1e-6
    if isinstance(expected, dict):
        return isinstance(actual, dict) and actual.keys() == expected.keys() and all(same(actual[key], expected[key]) for key in expected)
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(same, actual, expected))
    return bool(actual == expected)


def test_every_block_is_an_example_with_its_answer() -> None:
    found = blocks()
    assert {block.language for block in found} <= {"sh", "python", "yaml", "json", "text"}
    commands = [block for block, _ in examples()]
    outputs = [output for _, output in examples() if output is not None]
    assert len(commands) + len(outputs) == len(found), "an output block without a command before it"
    assert sum(1 for block in commands if block.text.startswith("curl")) >= 12


@pytest.mark.parametrize(
    ("block", "expected"), examples(), ids=lambda value: value.text.split("\n")[0][:60] if isinstance(value, Block) else ""
)
def test_documented_example(block: Block, expected: Block | None, iris_server: IrisServer) -> None:
    address = iris_server.url.removeprefix("http://")
    if block.language == "yaml":
        fragment = yaml.safe_load(block.text)
        parse_config({**fragment, "models": [{"class_path": "tests.support.seed_model.ThresholdRiskModel"}]}, {})
        return
    if block.language == "sh" and not block.text.startswith("curl"):
        commands = [line.split("#")[0].strip() for line in block.text.strip().splitlines()]
        assert commands == SETUP
        return
    assert expected is not None, f"no documented answer for {block.text!r}"
    if block.language == "sh":
        command = block.text.strip().replace("http://localhost:8000", iris_server.url)
        result = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30, check=True, cwd=ROOT)
        assert same(json.loads(result.stdout), json.loads(expected.text)), result.stdout
        return
    code = block.text.replace("localhost:8000", address).replace("localhost:8081", f"127.0.0.1:{iris_server.grpc_port}")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected.text.strip()
