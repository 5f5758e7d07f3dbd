"""The image, built once per session (cached by the content of its inputs), and the example bundle it serves."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.image.podman import ROOT, Podman, PodmanUnavailable


@dataclass(frozen=True)
class Image:
    podman: Podman
    tag: str
    build_seconds: float


@pytest.fixture(scope="session")
def image() -> Image:
    """Fails, never skips, when podman cannot build or run here: the image is part of what `make test` proves."""
    started = time.monotonic()
    try:
        podman = Podman.here()
        tag = podman.image()
    except PodmanUnavailable as exc:
        print(f"\nthe image tests need podman: {exc}", file=sys.stderr)
        pytest.fail(f"podman cannot build or run the image here: {exc}", pytrace=False)
    built = Image(podman, tag, time.monotonic() - started)
    print(f"\nimage {tag}: {podman.size(tag) / 1e6:.0f} MB, built or found in {built.build_seconds:.0f} s")
    return built


@dataclass(frozen=True)
class Example:
    """The diabetes example's signed version folder (what KServe's storage initializer leaves in /mnt/models)."""

    version_dir: Path
    keyring: Path


def readable(folder: Path) -> Path:
    """The container runs as 10001: a bind mount of a root-only test folder would be unreadable to it."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    home = tmp_path_factory.mktemp("example-home")
    published = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "diabetes_risk" / "publish.py"), "--home", str(home), "--fast"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert published.returncode == 0, published.stderr
    keyring = home / "keyring-mount"
    keyring.mkdir()
    shutil.copy(home / "keyring.json", keyring / "keyring.json")
    readable(keyring)
    return Example(home / "store" / "diabetes_risk" / "1.0.0", keyring)
