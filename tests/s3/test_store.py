"""The s3:// store against a real SeaweedFS server: CLI round trip, immutability, credentials, multipart, other clients."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from pathlib import Path

import httpx
import pytest

from sealserve.bundle import envelope, files
from sealserve.bundle.keyring import Keyring
from sealserve.errors import NotFoundError, StoreError, VersionExistsError
from sealserve.store import StoreAccessError, StoreUnavailableError, open_store
from sealserve.store.s3 import S3Location, S3Store
from sealserve.trust.verify import verify_staged
from tests.s3.helpers import Signer
from tests.s3.seaweed import BUCKET, Weed
from tests.support.server import SEALSERVE


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([SEALSERVE, *args], capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}, timeout=120)


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    return Signer.create(tmp_path_factory.mktemp("signer"))


def test_push_ls_promote_pull_round_trip_with_the_cli(running_weed: Weed, signer: Signer, prefix: str, tmp_path: Path) -> None:
    url = running_weed.url(prefix)
    first, second = signer.bundle("demo", "1.0.0"), signer.bundle("demo", "1.1.0", seed=1)
    for bundle in (first, second):
        pushed = cli("push", str(bundle), url)
        assert pushed.returncode == 0, pushed.stderr
        assert "pushed demo" in pushed.stdout
        assert "\r" not in pushed.stderr  # no progress bar when stderr is not a terminal
    assert cli("promote", "demo", "1.1.0", "production", url).returncode == 0

    models = cli("ls", url)
    assert models.stdout.split() == ["demo"]
    listing = cli("ls", url, "demo")
    assert listing.returncode == 0, listing.stderr
    rows = [line for line in listing.stdout.splitlines() if "1.0.0" in line or "1.1.0" in line]
    assert len(rows) == 2
    assert all("s3-test-key" in row for row in rows)
    assert "production" in rows[1]
    size = sum(path.stat().st_size for path in files.list_files(second).values())
    assert f"{size:,}" in rows[1]

    out = tmp_path / "pulled"
    pulled = cli("pull", "demo", "production", url, "--out", str(out))
    assert pulled.returncode == 0, pulled.stderr
    assert "pulled demo 1.1.0" in pulled.stdout
    verified = cli("verify", str(out), "--keyring", str(signer.keyring), "--name", "demo", "--version", "1.1.0")
    assert verified.returncode == 0, verified.stderr
    assert files.digest_files(files.list_files(out)) == files.digest_files(files.list_files(second))

    older = cli("promote", "demo", "1.0.0", "production", url)
    assert older.returncode == 0
    assert "rollback protection" in older.stderr


def test_other_s3_clients_read_what_sealserve_wrote(running_weed: Weed, signer: Signer, prefix: str) -> None:
    bundle = signer.bundle("reader", "2.0.0")
    store = open_store(running_weed.url(prefix))
    store.push(bundle)
    store.promote("reader", "2.0.0", "staging")
    local = files.digest_files(files.list_files(bundle))

    boto = running_weed.client()
    listed = boto.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/reader/")["Contents"]
    keys = sorted(item["Key"] for item in listed)
    assert keys == sorted([*(f"{prefix}/reader/2.0.0/{name}" for name in local), f"{prefix}/reader/_aliases/staging"])
    signature = boto.get_object(Bucket=BUCKET, Key=f"{prefix}/reader/2.0.0/model.sig")["Body"].read()
    assert hashlib.sha256(signature).hexdigest() == local["model.sig"]

    minio = running_weed.minio()
    objects = {item.object_name: item.size for item in minio.list_objects(BUCKET, prefix=f"{prefix}/reader/2.0.0/", recursive=True)}
    assert objects == {f"{prefix}/reader/2.0.0/{name}": path.stat().st_size for name, path in files.list_files(bundle).items()}
    response = minio.get_object(BUCKET, f"{prefix}/reader/2.0.0/sealserve.json")
    try:
        assert json.loads(response.read())["version"] == "2.0.0"
    finally:
        response.close()
        response.release_conn()
    alias = minio.get_object(BUCKET, f"{prefix}/reader/_aliases/staging")
    try:
        assert alias.read().decode().strip() == "2.0.0"
    finally:
        alias.close()
        alias.release_conn()
    signed = envelope.signed_digests(envelope.parse(signature).payload)
    assert signed == {name: digest for name, digest in local.items() if name != "model.sig"}


def test_versions_are_immutable(running_weed: Weed, signer: Signer, prefix: str, tmp_path: Path) -> None:
    store = open_store(running_weed.url(prefix))
    bundle = signer.bundle("fixed", "1.0.0")
    store.push(bundle)
    again = store.push(bundle)  # the same signed content may be pushed twice (idempotent retry)
    assert again.version == "1.0.0"
    other = Signer(tmp_path, signer.key, signer.keyring).bundle("fixed", "1.0.0", seed=7)
    with pytest.raises(VersionExistsError, match="already exists"):
        store.push(other)
    original = files.digest_files(files.list_files(bundle))
    fetched = tmp_path / "fetched"
    fetched.mkdir(mode=0o700)
    assert store.fetch("fixed", "1.0.0", fetched) == original
    refused = cli("push", str(other), running_weed.url(prefix))
    assert refused.returncode == 1
    assert "VersionExistsError" in refused.stderr


def test_wrong_credentials_give_a_clear_error(running_weed: Weed, prefix: str) -> None:
    result = cli("ls", running_weed.url(prefix), env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "StoreAccessError" in result.stderr
    assert "SignatureDoesNotMatch" in result.stderr
    assert "check the access key" in result.stderr
    unknown = cli("ls", running_weed.url(prefix), env={"AWS_ACCESS_KEY_ID": "AKNOBODY"})
    assert unknown.returncode == 1
    assert "StoreAccessError" in unknown.stderr

    store = S3Store(running_weed.url(prefix))
    store.client = running_weed.client(secret="wrong")
    with pytest.raises(StoreAccessError, match="refused the request"):
        store.resolve("demo", "production")
    # The server itself refuses unsigned requests: the keys are what protects the bucket.
    assert httpx.get(f"{running_weed.endpoint}/{BUCKET}/").status_code == 403
    assert httpx.put(f"{running_weed.endpoint}/{BUCKET}/{prefix}/x", content=b"x").status_code == 403


def test_large_bundle_uses_multipart_and_comes_back_verified(running_weed: Weed, signer: Signer, prefix: str) -> None:
    bundle = signer.bundle("large", "1.0.0", report_bytes=100 << 20)
    store = open_store(running_weed.url(prefix))
    assert isinstance(store, S3Store)
    reported: list[int] = []
    store.progress = lambda description, total: reported.append(total) or (lambda amount: reported.append(amount))  # type: ignore[func-returns-value]
    info = store.push(bundle)
    assert info.size > 100 << 20
    assert reported[0] == info.size - (bundle / "model.sig").stat().st_size
    report_key = f"{prefix}/large/1.0.0/reports/blob-large-1.0.0.bin"
    etag = running_weed.client().head_object(Bucket=BUCKET, Key=report_key)["ETag"]
    assert "-" in etag.strip('"'), f"expected a multipart ETag, got {etag}"

    workdir = files.private_directory()
    digests = store.fetch("large", "1.0.0", workdir)
    verified = verify_staged(workdir, digests, Keyring.load(signer.keyring), name="large", version="1.0.0")
    try:
        assert verified.file_digests == {k: v for k, v in digests.items() if k != "model.sig"}
        assert (workdir / "reports/blob-large-1.0.0.bin").stat().st_size == 100 << 20
        assert (workdir.stat().st_mode & 0o777) == 0o700
    finally:
        verified.discard()


def test_missing_things_and_half_pushed_versions(running_weed: Weed, signer: Signer, prefix: str) -> None:
    store = open_store(running_weed.url(prefix))
    with pytest.raises(NotFoundError):
        store.resolve("ghost", "production")
    with pytest.raises(NotFoundError):
        store.versions("ghost")
    # Files without model.sig are an unfinished push: invisible to readers.
    boto = running_weed.client()
    boto.put_object(Bucket=BUCKET, Key=f"{prefix}/partial/3.0.0/sealserve.json", Body=b"{}")
    with pytest.raises(NotFoundError):
        store.resolve("partial", "3.0.0")
    assert store.versions("partial") == []
    with pytest.raises(NotFoundError, match="push it first"):
        store.promote("partial", "3.0.0", "production")
    with pytest.raises(NotFoundError, match="bucket 'no-such-bucket' does not exist"):
        open_store(running_weed.url(prefix, bucket="no-such-bucket")).models()


def test_url_options_and_tls_rules(running_weed: Weed, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    location = S3Location.parse("s3://models/team/a?endpoint=https://s3.example:9000&region=eu-west-1&ca_bundle=/etc/ca.pem")
    assert (location.bucket, location.prefix, location.endpoint, location.region) == (
        "models",
        "team/a/",
        "https://s3.example:9000",
        "eu-west-1",
    )
    assert location.ca_bundle == "/etc/ca.pem"
    assert location.addressing == "path"
    assert S3Location.parse("s3://models").addressing is None
    with pytest.raises(StoreError, match="unknown s3 URL option"):
        S3Location.parse("s3://models?verify=false")
    with pytest.raises(StoreError, match="credentials do not belong"):
        S3Location.parse("s3://key:secret@models/x")
    with pytest.raises(StoreError, match="must be an https://"):
        S3Location.parse("s3://models?endpoint=ftp://host")
    # A plain-HTTP endpoint from the environment (an in-cluster MinIO) is used, with a warning naming it.
    monkeypatch.setenv("AWS_ENDPOINT_URL", running_weed.endpoint)
    with caplog.at_level(logging.WARNING, logger="sealserve.store"):
        store = open_store(f"s3://{BUCKET}/x")
    assert store.models() == []
    assert [record.getMessage() for record in caplog.records if running_weed.endpoint in record.getMessage()]


def test_tls_endpoint_is_verified_against_the_ca_bundle(running_weed: Weed, signer: Signer, prefix: str) -> None:
    secure = open_store(f"s3://{BUCKET}/{prefix}?endpoint={running_weed.tls_endpoint}&ca_bundle={running_weed.ca_file}")
    secure.push(signer.bundle("tls", "1.0.0"))
    assert secure.resolve("tls", "1.0.0") == "1.0.0"
    # Without the private CA the certificate is refused: verification is never switched off.
    with pytest.raises(StoreError, match=r"TLS to https://127\.0\.0\.1:\d+ failed .*certificate verify failed.*ca_bundle"):
        open_store(f"s3://{BUCKET}/{prefix}?endpoint={running_weed.tls_endpoint}").models()
    with pytest.raises(StoreError, match="TLS to"):
        open_store(f"s3://{BUCKET}/{prefix}?endpoint={running_weed.tls_endpoint}&ca_bundle=/nonexistent/ca.pem").models()


def test_unreachable_endpoint_is_reported_as_unavailable(prefix: str) -> None:
    from tests.support.server import free_port

    store = open_store(f"s3://{BUCKET}/{prefix}?endpoint=http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailableError, match="cannot reach"):
        store.resolve("demo", "production")


def test_progress_bar_only_on_a_terminal(running_weed: Weed, signer: Signer, prefix: str) -> None:
    import os
    import pty
    import threading

    bundle = signer.bundle("shown", "1.0.0", report_bytes=24 << 20)
    leader, follower = pty.openpty()
    shown = bytearray()

    def drain() -> None:  # read while the CLI writes, so a full terminal buffer never blocks it
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal closed
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        process = subprocess.Popen(
            [SEALSERVE, "push", str(bundle), running_weed.url(prefix)],
            stdout=subprocess.PIPE,
            stderr=follower,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"},
        )
        stdout, _ = process.communicate(timeout=120)
    finally:
        os.close(follower)
        reader.join(timeout=10)
        os.close(leader)
    assert process.returncode == 0
    assert b"pushed shown 1.0.0" in stdout
    assert b"push shown 1.0.0" in shown, bytes(shown[-500:])
    assert b"MB" in shown
