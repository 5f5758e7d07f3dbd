"""Build and run deploy/Dockerfile with Debian's podman, as this machine allows: runc, cgroupfs, host network only.

The base image is built here with mmdebstrap from Debian's packages (docker.io cannot be pulled), carries this
machine's extra CA certificates (its HTTPS traffic to PyPI passes a proxy with its own CA), and is passed to the
Dockerfile as BASE_IMAGE. Base and image are tagged by a content hash of their inputs, so a session builds them
only when an input changed. `python -m tests.image.podman` (what `make image` runs) builds and prints the tag.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
REPOSITORY = "localhost/sealserve"
BASE_REPOSITORY = "localhost/sealserve-base"
CACHE = Path(os.environ.get("SEALSERVE_IMAGE_CACHE", "/var/tmp/sealserve-image-cache"))
# What the Dockerfile's stages need from the base: python3.11 with venv and pip (`python -m pip` in the build stage),
# CA certificates, and groupadd/useradd (passwd, in every Debian base).
BASE_PACKAGES = ("python3.11", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates", "passwd")
EXTRA_CAS = Path("/usr/local/share/ca-certificates")
MIRROR = "http://deb.debian.org/debian"
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\n'
# The image's inputs: what .dockerignore lets into the context, and the Dockerfile itself.
CONTEXT = ("pyproject.toml", "uv.lock", "README.md", "src")


class PodmanUnavailable(RuntimeError):
    """Podman (or mmdebstrap) cannot build or run containers here; the message says why."""


def _digest(parts: list[tuple[str, bytes]]) -> str:
    hasher = hashlib.sha256()
    for name, data in parts:
        hasher.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return hasher.hexdigest()[:16]


def base_recipe() -> list[tuple[str, bytes]]:
    extra = sorted(EXTRA_CAS.glob("*.crt")) if EXTRA_CAS.is_dir() else []
    return [("packages", " ".join(BASE_PACKAGES).encode()), ("mirror", MIRROR.encode())] + [(p.name, p.read_bytes()) for p in extra]


def image_inputs() -> list[tuple[str, bytes]]:
    files = [DOCKERFILE, ROOT / ".dockerignore"]
    for name in CONTEXT:
        path = ROOT / name
        files += sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) if path.is_dir() else [path]
    return [(str(p.relative_to(ROOT)), p.read_bytes()) for p in files]


@dataclass(frozen=True)
class Podman:
    """podman with this machine's settings on every call: its own containers.conf, the runc runtime."""

    conf: Path

    @classmethod
    def here(cls) -> Podman:
        if shutil.which("podman") is None:
            raise PodmanUnavailable("podman is not installed: `make setup` installs Debian's podman, runc, mmdebstrap and haproxy")
        CACHE.mkdir(parents=True, exist_ok=True)
        conf = CACHE / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        podman = cls(conf)
        probe = podman.run("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
        if probe.returncode != 0:
            raise PodmanUnavailable(f"`podman info` failed ({probe.returncode}): {probe.stderr.strip()[-2000:]}")
        return podman

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["podman", "--runtime", "runc", *args], capture_output=True, text=True, env=self.env(), timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise PodmanUnavailable(f"podman {' '.join(args[:3])} … failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return result

    def exists(self, tag: str) -> bool:
        return self.run("image", "exists", tag, check=False).returncode == 0

    def size(self, tag: str) -> int:
        return int(json.loads(self.run("image", "inspect", tag).stdout)[0]["Size"])

    def base(self) -> str:
        """The mmdebstrap base, imported once per recipe."""
        tag = f"{BASE_REPOSITORY}:{_digest(base_recipe())}"
        if self.exists(tag):
            return tag
        if shutil.which("mmdebstrap") is None:
            raise PodmanUnavailable("mmdebstrap is not installed: `make setup` installs it")
        tarball = CACHE / f"base-{tag.rsplit(':', 1)[1]}.tar"
        hooks = ['rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED']  # the build stage runs `python -m pip install uv`
        if EXTRA_CAS.is_dir() and any(EXTRA_CAS.glob("*.crt")):
            hooks += [f'cp {EXTRA_CAS}/*.crt "$1"/usr/local/share/ca-certificates/', 'chroot "$1" update-ca-certificates']
            hooks += ['mkdir -p "$1"/etc/uv && printf "native-tls = true\\n" > "$1"/etc/uv/uv.toml']  # uv: the system's CAs
        hooks += ['rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*']
        command = ["mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}"]
        command += [f"--customize-hook={hook}" for hook in hooks]
        built = subprocess.run(
            [*command, "bookworm", str(tarball), MIRROR], capture_output=True, text=True, timeout=900, check=False, env=self.env()
        )
        if built.returncode != 0:
            raise PodmanUnavailable(f"mmdebstrap failed ({built.returncode}):\n{built.stderr[-4000:]}")
        try:
            self.run("import", "--change", "ENV LANG=C.UTF-8", str(tarball), tag, timeout=600)
        finally:
            tarball.unlink(missing_ok=True)
        self.forget_older(BASE_REPOSITORY, tag)
        return tag

    def image(self, base: str | None = None) -> str:
        """deploy/Dockerfile built on `base` (the local mmdebstrap base when None), once per content of its inputs."""
        base = base or self.base()
        tag = f"{REPOSITORY}:{_digest([*image_inputs(), ('base', base.encode())])}"
        if self.exists(tag):
            return tag
        args = ["build", "--network", "host", "-f", str(DOCKERFILE), "--build-arg", f"BASE_IMAGE={base}"]
        args += ["--build-arg", f"REVISION={tag.rsplit(':', 1)[1]}", "-t", tag, str(ROOT)]
        self.run(*args, timeout=1800)
        self.forget_older(REPOSITORY, tag)
        return tag

    def forget_older(self, repository: str, keep: str) -> None:
        """Remove the repository's other tags: each image is about 1 GB. Untagged build-stage layers stay, so the next
        build with the same lock file reuses its dependency layer instead of downloading them again."""
        listed = self.run("images", "--format", "{{.Repository}}:{{.Tag}}", repository, check=False).stdout.split()
        older = [name for name in listed if name != keep and name.startswith(f"{repository}:")]
        if older:
            self.run("rmi", *older, check=False)


def main() -> int:
    """`make image`: build (or find) the image and print its tag, size and build time."""
    started = time.monotonic()
    try:
        podman = Podman.here()
        tag = podman.image(os.environ.get("BASE_IMAGE") or None)
    except PodmanUnavailable as exc:
        print(f"cannot build the image: {exc}", file=sys.stderr)
        return 1
    print(f"{tag} {podman.size(tag) / 1e6:.0f} MB ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
