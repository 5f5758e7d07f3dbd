"""What an attacker does to a bundle: marker-writing pickles, flipped bytes, re-signing with another key."""

from __future__ import annotations

from pathlib import Path

from sealserve.bundle import keys
from sealserve.packing.build import sign_folder

PADDING = "attacker-controlled-padding-0123456789"


def marker_pickle(marker: Path, *, module: str = "builtins", name: str = "open") -> bytes:
    """A pickle whose loading calls `module.name(marker, "w")` (creating the marker file).

    The stream is (call, PADDING): flipping a byte inside the padding keeps it a valid, still-live pickle.
    """
    return f"(c{module}\n{name}\n(V{marker}\nVw\ntRV{PADDING}\nt.".encode()


def padding_offset(data: bytes) -> int:
    return data.index(PADDING.encode()) + 5


def flip_byte(path: Path, offset: int | None = None) -> None:
    """Flip one bit pattern (xor 0x01) at `offset` (default: the middle of the file)."""
    data = bytearray(path.read_bytes())
    where = len(data) // 2 if offset is None else offset
    data[where] ^= 0x01
    path.write_bytes(bytes(data))


def replace_model_and_sign(folder: Path, model_bytes: bytes, key: keys.SigningKey, *, model_file: str = "model.joblib") -> None:
    """Swap the model file for `model_bytes` and re-sign the whole folder with `key` (a correctly signed bundle)."""
    import json

    (folder / model_file).write_bytes(model_bytes)
    subject = json.loads((folder / "sealserve.json").read_text())["name"]
    sign_folder(folder, key, subject=subject)
