"""The kserve SDK's InferenceRESTClient (V1 and V2) and InferenceGRPCClient, in a subprocess.

kserve and tritonclient.grpc both put `inference.*` protobuf classes in the default descriptor pool
and cannot be imported into one process; the test process already holds tritonclient.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.protocols.conftest import ROOT, Served

SCRIPT = Path(__file__).with_name("kserve_clients.py")


def test_kserve_sdk_clients_get_the_seed_answer_over_v1_v2_and_grpc(served: Served) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), served.url, served.grpc], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["v1"] == {"predictions": ["versicolor", "versicolor"], "model_version": "1.0.0"}  # the declared labels
    assert found["v1_model_ready"] is True
    assert found["v2_server_live"] is found["v2_server_ready"] is found["v2_model_ready"] is True
    for key in ("v2_json", "v2_binary"):
        assert found[key] == {"predict": [1, 1], "model_version": "1.0.0", "id": "kserve-sdk"}
    assert "no model named 'nope'" in found["v2_unknown_model"]
    assert "404" in found["v2_unknown_model"]
    assert found["grpc_server_ready"] is True
    assert found["grpc"] == {"predict": [1, 1], "model_version": "1.0.0"}
