"""`sealserve pack` takes the files XGBoost and LightGBM users have (XGBoost JSON, LightGBM text), and the bundles serve
what the fitted models answer."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.support.bundles import Workspace
from tests.support.server import RunningServer, serve

VERSION = "1.0.0"
NAMES = ("a", "b", "c")


@dataclass(frozen=True)
class Served:
    server: RunningServer
    rows: np.ndarray
    expected: dict[str, list[Any]]


def pack(root: Path, model_file: str, name: str) -> subprocess.CompletedProcess[str]:
    from tests.support.server import SEALSERVE

    command = [SEALSERVE, "pack", model_file, "--name", name, "--version", VERSION, "--private-key", "signing-key.pem"]
    command += ["--out", f"{name}.zip", "--sample", "train.csv"]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, check=False, timeout=180)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import lightgbm
    import xgboost

    root = tmp_path_factory.mktemp("booster-files")
    space = Workspace.create(root)
    rng = np.random.default_rng(8)
    rows = rng.normal(size=(200, 3))
    pd.DataFrame(rows, columns=list(NAMES)).to_csv(root / "train.csv", index=False)
    labels = (rows[:, 0] + rows[:, 1] > 0).astype(int)
    classifier = xgboost.XGBClassifier(n_estimators=8, max_depth=3).fit(rows, labels)
    classifier.save_model(root / "classifier.json")
    booster = xgboost.train({"objective": "reg:squarederror"}, xgboost.DMatrix(rows, label=rows[:, 2]), 8)
    booster.save_model(root / "booster.json")
    regressor = lightgbm.LGBMRegressor(n_estimators=8, verbose=-1).fit(rows, rows[:, 0] * 2)
    regressor.booster_.save_model(root / "regressor.txt")
    probe = pd.read_csv(root / "train.csv").to_numpy()[:20]
    expected = {
        "xgb_classifier": classifier.predict(probe).tolist(),
        "xgb_booster": booster.predict(xgboost.DMatrix(probe)).astype(float).tolist(),
        "lgbm_text": regressor.booster_.predict(probe).tolist(),
    }
    for name, model_file in [("xgb_classifier", "classifier.json"), ("xgb_booster", "booster.json"), ("lgbm_text", "regressor.txt")]:
        result = pack(root, model_file, name)
        assert result.returncode == 0, result.stderr
        space.store.push(root / f"{name}.zip")
        space.store.promote(name, VERSION, "production")
    config = space.config(root / "service.yaml", *({"name": name} for name in expected))
    with serve(config, root) as server:
        yield Served(server, probe, expected)


@pytest.mark.parametrize("name", ["xgb_classifier", "xgb_booster", "lgbm_text"])
def test_a_booster_file_packed_from_the_cli_serves_what_the_fitted_model_answers(served: Served, name: str) -> None:
    records = [dict(zip(NAMES, row.tolist(), strict=True)) for row in served.rows]
    with served.server.client() as client:
        response = client.post(f"/api/models/{name}/predictions", json=records)
    assert response.status_code == 200, response.text
    answers = [output["prediction"] for output in response.json()["outputs"]]
    if name == "xgb_classifier":
        assert answers == served.expected[name]
    else:
        assert all(math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12) for got, want in zip(answers, served.expected[name], strict=True))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"features": ["a"]}', "is not a well-formed XGBoost model"),
        ("tree\nversion=v4\n", "model.json is a LightGBM text model, not XGBoost JSON"),
    ],
)
def test_a_file_that_is_not_a_booster_is_one_error_line(tmp_path: Path, content: str, message: str) -> None:
    Workspace.create(tmp_path)
    pd.DataFrame(np.zeros((3, 3)), columns=list(NAMES)).to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "model.json").write_text(content)
    result = pack(tmp_path, "model.json", "broken")
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "broken.zip").exists()
