"""The bundle format's compatibility rule, so the signed metadata can grow without splitting a fleet.

A reader serves every bundle of a major it knows and ignores fields it does not know; it refuses a higher major.
"""

from __future__ import annotations

import json
from typing import Any

from sealserve.errors import BundleFormatError, NewerFormatError

FORMAT_MAJOR = 3
"""The newest major this sealserve reads; it writes the lowest major that expresses a bundle (`OutputSpec.format_major`)."""

MAJOR_FIELD = "schema_version"


def check_major(document: Any, filename: str) -> None:
    """Refuse a bundle written for a major this reader does not know, naming the one it needs."""
    if not isinstance(document, dict):
        raise BundleFormatError(f"{filename} is not a JSON object")
    major = document.get(MAJOR_FIELD, 1)
    if isinstance(major, bool) or not isinstance(major, int) or major < 1:
        raise BundleFormatError(f"{filename} is invalid at {MAJOR_FIELD}: {json.dumps(major)} is not a bundle format major (1, 2, ...)")
    if major > FORMAT_MAJOR:
        packed_by = _packed_by(document)
        raise NewerFormatError(
            f"bundle format {major}{packed_by} needs a server that reads bundle format {major}; "
            f"this server reads bundle format {FORMAT_MAJOR} and older: upgrade the server before serving this bundle"
        )


def _packed_by(document: dict[str, Any]) -> str:
    versions = document.get("library_versions")
    packer = versions.get("sealserve") if isinstance(versions, dict) else None
    return f" (packed by sealserve {packer})" if isinstance(packer, str) else ""
