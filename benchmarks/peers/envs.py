"""Throwaway virtual environments for the peer servers and tools, built once under the cache folder.

An environment is reused while its marker file records the same requirements; otherwise it is rebuilt.
uv (the project's `.tools/bin/uv`, or one on PATH) builds it when present, else `python -m venv` + pip.
Failures (a registry's "no", a time-out) come back as a message, never as an exception.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 900.0
SKLEARN = version("scikit-learn")  # the joblib file is read by the same scikit-learn release that wrote it


@dataclass(frozen=True)
class EnvSpec:
    name: str
    requirements: tuple[str, ...]
    packages: tuple[str, ...]  # distributions whose versions the report names


MLSERVER = EnvSpec(
    "mlserver",
    ("mlserver>=1.7,<1.8", "mlserver-sklearn>=1.7,<1.8", "uvloop<0.22", f"scikit-learn=={SKLEARN}"),
    ("mlserver", "mlserver-sklearn"),
)
# uvicorn[standard] gives it uvloop + httptools, as sealserve and the floor have.
REST_MODEL_SERVICE = EnvSpec(
    "rest_model_service",
    ("rest_model_service>=0.6,<0.7", "ml-base>=0.2,<0.3", "uvicorn[standard]", f"scikit-learn=={SKLEARN}"),
    ("rest_model_service", "ml-base"),
)
# The HTTP transport evaluated against uvicorn + httptools + uvloop (issue 21, item 4); the floor app's own libraries
# beside it. sealserve's app runs under it with the project's packages on PYTHONPATH (peers/granian_app.py).
GRANIAN = EnvSpec("granian", ("granian[uvloop]>=2.8,<2.9", "onnxruntime", "orjson", "numpy<2.4"), ("granian",))
TOOLS = EnvSpec("tools", ("py-spy>=0.4,<0.5",), ("py-spy",))


@dataclass(frozen=True)
class Env:
    spec: EnvSpec
    path: Path
    versions: dict[str, str]

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"


def _uv() -> str | None:
    local = ROOT / ".tools" / "bin" / "uv"
    return str(local) if local.exists() else shutil.which("uv")


def _run(argv: list[str], timeout: float) -> str | None:
    """Run a build step; return None on success, else the tail of its output."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env={"UV_PYTHON_DOWNLOADS": "never", **_base_env()})
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f}s: {' '.join(argv[:3])} …"
    except OSError as exc:
        return f"{argv[0]}: {exc.strerror}"
    if done.returncode == 0:
        return None
    tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
    return "\n      ".join(tail) or f"exit status {done.returncode}"


def _base_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}


def base_python() -> str:
    """The interpreter the project's .venv was made from, so every server runs the same Python."""
    candidate = Path(sys.base_prefix) / "bin" / "python3"
    return str(candidate) if candidate.exists() else (shutil.which("python3") or sys.executable)


def _versions(python: Path, packages: tuple[str, ...]) -> dict[str, str]:
    code = f"import importlib.metadata as m, json; print(json.dumps({{p: m.version(p) for p in {list(packages)!r}}}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return dict(json.loads(done.stdout))


def ensure_env(cache: Path, spec: EnvSpec) -> Env | str:
    """The environment, built if needed; a message when it cannot be built."""
    path = cache / spec.name
    marker = path / ".bench-requirements.json"
    # the interpreter too: an env made from another Python (the project's .venv moved to Debian's) is made again
    wanted = json.dumps({"python": os.path.realpath(base_python()), "requirements": list(spec.requirements)})
    python = path / "bin" / "python"
    if not (marker.exists() and marker.read_text() == wanted and python.exists()):
        print(f"  building {spec.name} env in {path} ({', '.join(spec.requirements)}) …", flush=True)
        shutil.rmtree(path, ignore_errors=True)
        uv = _uv()
        if uv:
            steps = [
                [uv, "venv", "--quiet", "--python", base_python(), str(path)],
                [uv, "pip", "install", "--quiet", "--python", str(python), *spec.requirements],
            ]
        else:
            steps = [
                [base_python(), "-m", "venv", str(path)],
                [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *spec.requirements],
            ]
        for step in steps:
            problem = _run(step, INSTALL_TIMEOUT)
            if problem:
                shutil.rmtree(path, ignore_errors=True)
                return f"could not build the {spec.name} env: {problem}"
        marker.write_text(wanted)
    try:
        return Env(spec, path, _versions(python, spec.packages))
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        return f"the {spec.name} env is broken ({exc}); delete {path} to rebuild it"


def ensure_wrk() -> str | None:
    """Path of wrk, installing the Debian package when missing (apt-get update only if the first try fails)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("  wrk not found: apt-get install -y wrk …", flush=True)
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    problem = _run(install, 600)
    if problem:
        _run(["apt-get", "update", "-q"], 600)
        problem = _run(install, 600)
    if problem:
        print(f"  could not install wrk: {problem}", flush=True)
    return shutil.which("wrk")


def compile_sources() -> None:
    """sealserve's bytecode, as `make bytecode` writes it: an installed package has it, and where
    PYTHONDONTWRITEBYTECODE is set every server start would otherwise compile each module it imports."""
    import compileall

    compileall.compile_dir(ROOT / "src", quiet=1)
