"""`sealserve serve --grpc-port`: one process binds it; with several workers the config carries the port."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sealserve.cli.main import app
from tests.support.bundles import Workspace


def test_grpc_port_with_several_workers_is_refused_before_serving(tmp_path: Path) -> None:
    config = Workspace.create(tmp_path).config(tmp_path / "service.yaml", {"name": "demo"})
    result = CliRunner().invoke(app, ["serve", str(config), "--workers", "2", "--grpc-port", "8081"])
    assert result.exit_code == 1
    assert "protocols.grpc_port" in result.output
