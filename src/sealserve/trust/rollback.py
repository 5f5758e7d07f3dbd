"""Rollback protection: an alias may not move the service back to an older version than it has already served.

It is part of the trust path because a validly signed but older bundle is the attack it stops; the check runs on the
resolved version, before anything is fetched.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from sealserve.errors import RollbackError, StoreError


def check_rollback(name: str, ref: str, version: str, highest: dict[str, Version]) -> None:
    """An alias may not take the service back to an older version; naming the version explicitly may."""
    if version == ref:
        return
    served = highest.get(name)
    try:
        older = served is not None and Version(version) < served
    except InvalidVersion:
        raise StoreError(f"{name}: {ref!r} names {version!r}, which is not a version") from None
    if older:
        raise RollbackError(f"{name}: alias {ref!r} points at {version}, older than {served} already served; pin {version} to roll back")
