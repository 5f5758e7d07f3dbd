"""botocore and s3transfer failures as sealserve's StoreError subtypes, so callers see one clear error and no secrets."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    SSLError,
)
from s3transfer.exceptions import RetriesExceededError

from sealserve.errors import NotFoundError, StoreError
from sealserve.store.base import StoreAccessError, StoreUnavailableError

ACCESS_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
}
TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed", "Throttling"}
NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}
UNSUPPORTED_CODES = {"NotImplemented", "501"}


def translate(exc: BaseException, what: str, *, url: str, bucket: str, endpoint: str) -> StoreError:
    """One clear StoreError subtype for every botocore/s3transfer failure; messages carry no secrets."""
    where = f"{bucket} at {endpoint}"
    if isinstance(exc, ClientError):
        code, status = error_code(exc)
        if code == "NoSuchBucket":
            return NotFoundError(f"{what}: bucket {bucket!r} does not exist at {endpoint}")
        if code in NOT_FOUND_CODES or status == 404:
            return NotFoundError(f"{what}: not found in {url}")
        if code in ACCESS_CODES or status in (401, 403):
            return StoreAccessError(
                f"{what}: {where} refused the request ({code or status}); check the access key and secret "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile, or store_credentials) and the bucket policy"
            )
        if code in TRANSIENT_CODES or status >= 500:
            return StoreUnavailableError(f"{what}: {where} answered {status} {code}; will retry")
        return StoreError(f"{what}: {where} answered {status} {code}")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return StoreAccessError(
            f"{what}: no usable S3 credentials ({exc}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "a profile (?profile=…), or store_credentials in the service config"
        )
    if isinstance(exc, SSLError):
        return StoreError(f"{what}: TLS to {endpoint} failed ({exc}); for a private CA add ?ca_bundle=/path/ca.pem")
    if isinstance(exc, ConnectionError | HTTPClientError | RetriesExceededError | BotoCoreError):
        return StoreUnavailableError(f"{what}: cannot reach {endpoint} ({type(exc).__name__})")
    return StoreError(f"{what}: {type(exc).__name__}")


def error_code(exc: ClientError) -> tuple[str, int]:
    """The S3 error code and HTTP status of a ClientError ("" and 0 when absent)."""
    error = exc.response.get("Error", {})
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return str(error.get("Code", "")), status
