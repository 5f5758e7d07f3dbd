"""Every command in the README runs: the CLI flow literally, and the curl body against a served model."""

import json
import os
import re
import subprocess
from pathlib import Path

import httpx

from tests.support.server import serve

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
README_STORE = "file:///var/lib/sealserve/store"


def code_block_after(heading: str) -> str:
    match = re.search(rf"## {heading}\n.*?```bash\n(.*?)```", README, re.S)
    assert match, f"README has no bash block under '## {heading}'"
    return match.group(1)


def test_quick_start_is_exactly_the_two_make_commands_and_ci_runs_the_second() -> None:
    commands = [line.split("#")[0].strip() for line in code_block_after("Quick start").splitlines() if line.strip()]
    assert commands == ["make serve", "make test"]
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("make test")


def test_the_flow_runs_as_typed_in_bash(tmp_path: Path) -> None:
    """The flow block, pasted into bash in a checkout after `make setup`: only the store path differs (no /var/lib)."""
    for shared in (".venv", "examples"):
        (tmp_path / shared).symlink_to(ROOT / shared)
    store = (tmp_path / "store").as_uri()
    flow = code_block_after("The flow").replace(README_STORE, store)
    assert flow.splitlines()[-1].startswith("sealserve serve ")
    script = "set -euo pipefail\n" + "\n".join(flow.splitlines()[:-1]) + "\n"
    environment = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONHOME")}
    environment["PATH"] = "/usr/bin:/bin"  # a fresh shell: nothing of this checkout on PATH until the activate line
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"

    yaml_block = re.search(r"```yaml\n(.*?)```", README, re.S)
    assert yaml_block, "README has no service.yaml example"
    config = tmp_path / "service.yaml"
    config.write_text(yaml_block.group(1).replace(README_STORE, store).replace("keyring.json", str(tmp_path / "keyring.json")))
    curl = re.search(r"-d '(\{.*?\})'", README)
    assert curl, "README has no curl example body"
    with serve(config, tmp_path) as server:
        response = httpx.post(f"{server.url}/api/models/diabetes_risk/prediction", json=json.loads(curl.group(1)))
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == "1.0.0"
    assert response.json()["output"]["prediction"] in {0, 1}  # the class values keep their JSON type
