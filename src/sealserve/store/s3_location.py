"""The `s3://bucket/prefix?options` URL: everything non-secret about where a store lives."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlparse

from sealserve.errors import StoreError

URL_OPTIONS = ("endpoint", "region", "ca_bundle", "addressing", "profile")


@dataclass(frozen=True)
class S3Location:
    """A parsed `s3://bucket/prefix?options` URL."""

    bucket: str
    prefix: str
    endpoint: str | None = None
    region: str | None = None
    ca_bundle: str | None = None
    addressing: str | None = None
    profile: str | None = None

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parsed = urlparse(url)
        if parsed.scheme != "s3":
            raise StoreError(f"not an s3:// URL: {url!r}")
        if parsed.username or parsed.password or "@" in parsed.netloc:
            raise StoreError("credentials do not belong in a store URL; use the AWS environment/profile or store_credentials")
        bucket = parsed.netloc
        if not bucket:
            raise StoreError(f"{url!r} names no bucket; use s3://bucket/prefix")
        prefix = parsed.path.strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise StoreError(f"{url!r}: the prefix must not contain empty, '.' or '..' segments")
        options: dict[str, str] = {}
        for key, value in parse_qsl(parsed.query, keep_blank_values=True, strict_parsing=bool(parsed.query)):
            if key not in URL_OPTIONS:
                raise StoreError(f"unknown s3 URL option {key!r}; known options: {', '.join(URL_OPTIONS)}")
            if key in options:
                raise StoreError(f"s3 URL option {key!r} given twice")
            options[key] = value
        endpoint = options.get("endpoint")
        if endpoint is not None:
            scheme = urlparse(endpoint).scheme
            if scheme not in ("https", "http") or not urlparse(endpoint).netloc:
                raise StoreError(f"endpoint {endpoint!r} must be an https:// (or explicitly http://) URL")
        addressing = options.get("addressing")
        if addressing not in (None, "path", "virtual", "auto"):
            raise StoreError(f"addressing must be path, virtual or auto, not {addressing!r}")
        return cls(
            bucket=bucket,
            prefix=f"{prefix}/" if prefix else "",
            endpoint=endpoint,
            region=options.get("region"),
            ca_bundle=options.get("ca_bundle"),
            addressing=addressing or ("path" if endpoint else None),
            profile=options.get("profile"),
        )
