"""The s3:// store (AWS S3, MinIO, SeaweedFS, …) with the file store's layout and rules.

Layout under `s3://bucket/prefix/`, identical to the file store so a folder can be mirrored either way:

    <name>/<version>/<file>          the bundle's files; `model.sig` is written last and marks the version complete
    <name>/_aliases/<alias>          a small object holding the version the alias points at

A version exists once its `model.sig` exists. That object is written with a conditional put
(`If-None-Match: *`), so two pushes of one version cannot both succeed; servers without
conditional writes get a read-before-write check instead. Readers never see a half-written version.

URL options (query parameters, never credentials):

    endpoint=https://host:port   S3-compatible endpoint (else AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / the AWS config);
                                 plain HTTP from the environment works too, with one warning naming it
    region=eu-west-1             signing region
    ca_bundle=/path/ca.pem       CA certificates to verify the endpoint's TLS certificate
    addressing=path|virtual|auto bucket addressing (default: path with an endpoint, auto without)
    profile=name                 a named profile from ~/.aws/config
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound
from packaging.version import Version
from s3transfer.exceptions import RetriesExceededError

from sealserve.bundle import envelope, files
from sealserve.bundle.metadata import METADATA_FILE, NAME_PATTERN, check_name
from sealserve.errors import BundleFormatError, BundleTooLargeError, NotFoundError, SealserveError, StoreError, VersionExistsError
from sealserve.store.base import Credentials, ProgressStart, StoreUnavailableError, VersionInfo, check_alias, is_version, version_info
from sealserve.store.local import ALIASES_DIR, inspect_bundle
from sealserve.store.s3_errors import UNSUPPORTED_CODES, error_code, translate
from sealserve.store.s3_location import S3Location
from sealserve.store.s3_transfer import HashingSink, TransferWatch, transfer_config
from sealserve.trust.verify import read_identity

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger("sealserve.store")


class S3Store:
    """Versioned bundles in an S3 bucket; a second implementation of the `Store` protocol."""

    def __init__(
        self,
        url: str,
        *,
        credentials: Credentials | None = None,
        limits: files.BundleLimits | None = None,
        transfer: TransferConfig | None = None,
        client: S3Client | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.location = S3Location.parse(url)
        self.limits = limits or files.BundleLimits()
        self.transfer = transfer or transfer_config()
        self.progress: ProgressStart | None = None
        self.client: S3Client = client or self._make_client(credentials, connect_timeout, read_timeout)
        self.endpoint = self.client.meta.endpoint_url
        if self.endpoint.startswith("http://") and self.location.endpoint is None:
            logger.warning(
                "%s: S3 endpoint %s (from AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or the AWS config file) is plain HTTP; "
                "bundles are still verified against the keyring, but credentials and traffic are not encrypted",
                self.location.bucket,
                self.endpoint,
            )

    def _make_client(self, credentials: Credentials | None, connect_timeout: float, read_timeout: float) -> S3Client:
        location = self.location
        try:
            session = boto3.session.Session(
                profile_name=location.profile,
                aws_access_key_id=credentials.access_key_id if credentials else None,
                aws_secret_access_key=credentials.secret_access_key if credentials else None,
                aws_session_token=credentials.session_token if credentials else None,
            )
            config = Config(
                region_name=location.region,
                signature_version="s3v4",
                s3={"addressing_style": cast(Any, location.addressing or "auto")},
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_pool_connections=max(10, self.transfer.max_request_concurrency + 4),
                user_agent_extra="sealserve",
            )
            return session.client("s3", endpoint_url=location.endpoint, verify=location.ca_bundle, config=config)
        except ProfileNotFound as exc:
            raise StoreError(f"{self.url}: {exc}") from None
        except (BotoCoreError, ValueError) as exc:
            raise StoreError(f"{self.url}: cannot configure the S3 client: {exc}") from None

    # -- the Store protocol ---------------------------------------------------------------------

    def push(self, bundle: Path) -> VersionInfo:
        staging = files.private_directory("sealserve-push-")
        try:
            inspect_bundle(bundle, staging, self.limits)
            name, version = read_identity(staging)
            listed = files.list_files(staging, self.limits)
            signature = (staging / files.SIGNATURE_FILE).read_bytes()
            size = sum(path.stat().st_size for path in listed.values())
            info = version_info(name, version, size, signature, listed[METADATA_FILE].read_bytes())
            existing = self._read_optional(self._key(name, version, files.SIGNATURE_FILE), f"{name} {version}")
            if existing is not None:
                return self._same_version(info, signature, existing)
            payload = {rel: path for rel, path in listed.items() if rel != files.SIGNATURE_FILE}
            total = sum(path.stat().st_size for path in payload.values())
            with self._transfers(f"push {name} {version}", total) as (manager, watch):
                futures = [
                    manager.upload(str(path), self.location.bucket, self._key(name, version, rel), subscribers=[watch(path.stat().st_size)])
                    for rel, path in sorted(payload.items())
                ]
                for future in futures:
                    future.result()
            self._commit(info, signature)
            return info
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def fetch(self, name: str, version: str, destination: Path) -> dict[str, str]:
        objects = self._version_objects(name, version)
        if files.SIGNATURE_FILE not in objects:
            raise NotFoundError(f"{name} {version} is not in {self.url}")
        if len(objects) > self.limits.max_files:
            raise BundleTooLargeError(f"{name} {version} has more than {self.limits.max_files} files")
        total = sum(objects.values())
        if total > self.limits.max_total_bytes:
            raise BundleTooLargeError(f"{name} {version} is larger than {self.limits.max_total_bytes} bytes")
        sinks = {rel: HashingSink(destination / rel, size) for rel, size in objects.items()}
        try:
            with self._transfers(f"pull {name} {version}", total) as (manager, watch):
                futures = [
                    manager.download(self.location.bucket, self._key(name, version, rel), sink, subscribers=[watch(sink.expected)])
                    for rel, sink in sinks.items()
                ]
                for future in futures:
                    future.result()
            return {rel: sink.finish() for rel, sink in sinks.items()}
        finally:
            for sink in sinks.values():
                sink.close()

    def resolve(self, name: str, ref: str) -> str:
        check_name(name)
        if is_version(ref):
            if self._exists(self._key(name, ref, files.SIGNATURE_FILE), f"{name} {ref}"):
                return ref
            raise NotFoundError(f"{name}: no version {ref!r} in {self.url}")
        try:
            check_alias(ref)
        except StoreError:
            raise NotFoundError(f"{name}: {ref!r} is neither a version nor an alias") from None
        target = self._read_optional(self._alias_key(name, ref), f"{name} alias {ref}")
        if target is None:
            raise NotFoundError(f"{name}: no version or alias {ref!r} in {self.url}")
        version = target.decode("utf-8", "replace").strip()
        if not is_version(version):
            raise StoreError(f"{name}: alias {ref!r} holds {version[:40]!r}, which is not a version")
        return version

    def models(self) -> list[str]:
        found = []
        for prefix in self._list_prefixes(self.location.prefix):
            candidate = prefix[len(self.location.prefix) :].rstrip("/")
            if NAME_PATTERN.match(candidate):
                found.append(candidate)
        return sorted(found)

    def versions(self, name: str) -> list[VersionInfo]:
        base = f"{self.location.prefix}{check_name(name)}/"
        grouped: dict[str, dict[str, int]] = {}
        seen = False
        for key, size in self._list_objects(base):
            seen = True
            version, _, rel = key[len(base) :].partition("/")
            if rel and is_version(version):
                grouped.setdefault(version, {})[rel] = size
        if not seen:
            raise NotFoundError(f"no model {name!r} in {self.url}")
        complete = {version: sizes for version, sizes in grouped.items() if files.SIGNATURE_FILE in sizes}
        infos = []
        for version in sorted(complete, key=Version):
            signature = self._read_optional(self._key(name, version, files.SIGNATURE_FILE), f"{name} {version}")
            metadata = self._read_optional(self._key(name, version, METADATA_FILE), f"{name} {version}")
            infos.append(version_info(name, version, sum(complete[version].values()), signature, metadata))
        return infos

    def aliases(self, name: str) -> dict[str, str]:
        base = f"{self.location.prefix}{check_name(name)}/{ALIASES_DIR}/"
        found = {}
        for key, _size in self._list_objects(base):
            alias = key[len(base) :]
            if "/" in alias or alias.startswith("."):
                continue
            body = self._read_optional(key, f"{name} alias {alias}")
            if body is not None:
                found[alias] = body.decode("utf-8", "replace").strip()
        return dict(sorted(found.items()))

    def promote(self, name: str, version: str, alias: str) -> None:
        check_alias(alias)
        check_name(name)
        if not is_version(version) or not self._exists(self._key(name, version, files.SIGNATURE_FILE), f"{name} {version}"):
            raise NotFoundError(f"{name} {version} is not in {self.url}; push it first")
        with self._errors(f"promote {name} {version} to {alias}"):
            self.client.put_object(Bucket=self.location.bucket, Key=self._alias_key(name, alias), Body=f"{version}\n".encode())

    # -- helpers ---------------------------------------------------------------------------------

    def _key(self, name: str, version: str, rel: str) -> str:
        return f"{self.location.prefix}{name}/{version}/{rel}"

    def _alias_key(self, name: str, alias: str) -> str:
        return f"{self.location.prefix}{name}/{ALIASES_DIR}/{alias}"

    def _commit(self, info: VersionInfo, signature: bytes) -> None:
        """Write model.sig only if absent: the version becomes visible atomically, exactly once."""
        key = self._key(info.name, info.version, files.SIGNATURE_FILE)
        try:
            self.client.put_object(Bucket=self.location.bucket, Key=key, Body=signature, IfNoneMatch="*")
            return
        except ClientError as exc:
            code, status = error_code(exc)
            if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                existing = self._read_optional(key, f"{info.name} {info.version}")
                if existing is not None:
                    self._same_version(info, signature, existing)
                    return
                raise StoreUnavailableError(f"{info.name} {info.version}: a concurrent push is writing this version; try again") from None
            if code not in UNSUPPORTED_CODES and status != 501:
                raise self._translate(exc, f"push {info.name} {info.version}") from None
        except (BotoCoreError, RetriesExceededError) as exc:
            raise self._translate(exc, f"push {info.name} {info.version}") from None
        # The server has no conditional writes: check, then write (a narrow race remains; see docs/storage.md).
        existing = self._read_optional(key, f"{info.name} {info.version}")
        if existing is not None:
            self._same_version(info, signature, existing)
            return
        with self._errors(f"push {info.name} {info.version}"):
            self.client.put_object(Bucket=self.location.bucket, Key=key, Body=signature)

    def _same_version(self, info: VersionInfo, ours: bytes, theirs: bytes) -> VersionInfo:
        """A version may be pushed twice only with identical signed content (signatures themselves may differ)."""
        try:
            same = envelope.signed_digests(envelope.parse(theirs).payload) == envelope.signed_digests(envelope.parse(ours).payload)
        except SealserveError:
            same = False
        if not same:
            raise VersionExistsError(f"{info.name} {info.version} already exists in {self.url} with different content")
        return info

    def _version_objects(self, name: str, version: str) -> dict[str, int]:
        check_name(name)
        if not is_version(version):
            raise NotFoundError(f"{name} {version} is not in {self.url}")
        base = f"{self.location.prefix}{name}/{version}/"
        objects: dict[str, int] = {}
        for key, size in self._list_objects(base):
            rel = key[len(base) :]
            if rel.endswith("/") and size == 0:
                continue  # a "folder" marker some tools create
            objects[files.check_relative_name(rel)] = size
            if len(objects) > self.limits.max_files:
                raise BundleTooLargeError(f"{name} {version} has more than {self.limits.max_files} files")
        return objects

    def _list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        with self._errors(f"list {prefix or '/'}"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"], int(item.get("Size", 0))

    def _list_prefixes(self, prefix: str) -> list[str]:
        found: list[str] = []
        with self._errors(f"list {prefix or '/'}"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix, Delimiter="/"):
                found.extend(item["Prefix"] for item in page.get("CommonPrefixes", []) if "Prefix" in item)
        return found

    def _exists(self, key: str, what: str) -> bool:
        try:
            self.client.head_object(Bucket=self.location.bucket, Key=key)
            return True
        except ClientError as exc:
            error = self._translate(exc, what)
            if isinstance(error, NotFoundError) and error_code(exc)[0] != "NoSuchBucket":
                return False
            raise error from None
        except (BotoCoreError, RetriesExceededError) as exc:
            raise self._translate(exc, what) from None

    def _read_optional(self, key: str, what: str, limit: int = envelope.MAX_SIGNATURE_BYTES) -> bytes | None:
        """A small object's bytes, or None when it does not exist."""
        try:
            response = self.client.get_object(Bucket=self.location.bucket, Key=key)
            with response["Body"] as body:
                data = body.read(limit + 1)
            if len(data) > limit:
                raise BundleFormatError(f"{what}: {key.rsplit('/', 1)[-1]} is larger than {limit} bytes")
            return data
        except ClientError as exc:
            error = self._translate(exc, what)
            if isinstance(error, NotFoundError) and error_code(exc)[0] != "NoSuchBucket":
                return None
            raise error from None
        except (BotoCoreError, RetriesExceededError) as exc:
            raise self._translate(exc, what) from None

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError, RetriesExceededError) as exc:
            raise self._translate(exc, what) from None

    @contextmanager
    def _transfers(self, description: str, total: int) -> Iterator[tuple[Any, Callable[[int], TransferWatch]]]:
        """A transfer manager for one operation, plus a factory of per-object progress subscribers."""
        advance = self.progress(description, total) if self.progress is not None else None
        with self._errors(description), create_transfer_manager(self.client, self.transfer) as manager:
            yield manager, lambda size: TransferWatch(size, advance)

    def _translate(self, exc: BaseException, what: str) -> StoreError:
        return translate(exc, what, url=self.url, bucket=self.location.bucket, endpoint=self.endpoint)
