"""Rendered overlays, once per session, as files the validators read."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.manifests import OVERLAYS, render


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`kubectl kustomize` output of the base and every overlay, one file each."""
    folder = tmp_path_factory.mktemp("rendered")
    paths = {}
    for overlay in ("base", *OVERLAYS):
        path = folder / f"{overlay}.yaml"
        path.write_text(render(overlay))
        paths[overlay] = path
    return paths
