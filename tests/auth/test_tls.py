"""`serve --tls-cert/--tls-key`: HTTPS and gRPC over TLS from one certificate, for deployments without an ingress."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from pathlib import Path

import grpc
import httpx
import pytest
import tritonclient.grpc as grpcclient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.auth.conftest import KEYS, private_pem
from tests.support.bundles import Workspace
from tests.support.server import free_port, serve


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealserve test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(private_pem(key))
    key_path.chmod(0o600)
    return cert_path, key_path


def test_https_and_grpc_over_tls_with_bearer_credentials(tmp_path: Path) -> None:
    space = Workspace.create(tmp_path)
    space.publish("demo", "1.0.0")
    cert, key = self_signed(tmp_path)
    api_key, _ = KEYS["ci-pipeline"]
    auth = {
        "enabled": True,
        "api_keys": [{"name": "ci", "sha256": hashlib.sha256(api_key.encode()).hexdigest(), "scopes": ["predict", "read"]}],
    }
    config = space.config(tmp_path / "service.yaml", {"name": "demo"}, auth=auth)
    grpc_port = free_port()
    flags = ("--tls-cert", str(cert), "--tls-key", str(key), "--grpc-port", str(grpc_port))
    with serve(config, tmp_path, extra_args=flags, ca=cert) as server:
        record = {"size": 7.5, "count": 3, "color": "BLUE"}
        with httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=str(cert)), timeout=10) as client:
            answer = client.post("/api/models/demo/prediction", json=record, headers={"Authorization": f"Bearer {api_key}"})
            assert answer.status_code == 200, answer.text
            assert client.post("/api/models/demo/prediction", json=record).status_code == 401
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url.replace("https://", "http://") + "/api/health", timeout=5)  # no plain HTTP on the TLS port
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(server.url + "/api/health", timeout=5, verify=ssl.create_default_context())  # the system CAs do not vouch for it

        with grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}", ssl=True, root_certificates=str(cert)) as client:
            assert client.is_server_ready()
            metadata = client.get_model_metadata("demo", headers={"authorization": f"Bearer {api_key}"})
            assert metadata.name == "demo"

        class Bearer(grpc.AuthMetadataPlugin):
            """grpc's own per-call credentials (what Go or Java clients use) send the same metadata."""

            def __call__(self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
                callback((("authorization", f"Bearer {api_key}"),), None)

        credentials = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(cert.read_bytes()), grpc.metadata_call_credentials(Bearer())
        )
        with grpc.secure_channel(f"127.0.0.1:{grpc_port}", credentials) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="demo"), timeout=10).name == "demo"
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.RpcError):
                stub.ServerLive(service_pb2.ServerLiveRequest(), timeout=5)
