"""Train, pack + sign, push and promote the diabetes risk model into a store (the `make serve` flow).

Usage::

    python examples/diabetes_risk/publish.py --home .sealserve [--fast]

Creates (once) a signing key and keyring under HOME, then trains, packs the model with its reports,
pushes it to file://HOME/store and points the `production` alias at it. Re-running with a version
that is already in the store only re-points the alias: versions are immutable.
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train import train

import sealserve
from sealserve.bundle import keyring
from sealserve.errors import NotFoundError
from sealserve.store import open_store

NAME = "diabetes_risk"
VERSION = "1.0.0"
FEATURE_OVERRIDES = {
    "pregnancies": {"kind": "integer", "minimum": 0, "maximum": 25, "description": "Number of pregnancies."},
    "glucose": {"minimum": 0, "maximum": 400, "description": "Plasma glucose concentration in an oral glucose tolerance test (mg/dL)."},
    "blood_pressure": {"minimum": 0, "maximum": 250, "description": "Diastolic blood pressure (mm Hg)."},
    "skin_thickness": {"minimum": 0, "maximum": 120, "description": "Triceps skin fold thickness (mm)."},
    "bmi": {"minimum": 10, "maximum": 90, "description": "Body mass index (kg/m²)."},
    "pedigree": {"minimum": 0, "maximum": 5, "description": "Diabetes pedigree function (family history score)."},
    "age": {"kind": "integer", "minimum": 18, "maximum": 120, "description": "Age in years."},
}


def ensure_key(home: Path) -> tuple[Path, Path]:
    private_key, keyring_path = home / "signing-key.pem", home / "keyring.json"
    if not private_key.exists():
        home.mkdir(parents=True, exist_ok=True)
        keyring.create_signing_key(private_key, keyring_path, kid="example-key")
    return private_key, keyring_path


def publish(home: Path, *, fast: bool = False, version: str = VERSION) -> str:
    """Return the store URL holding the model with `production` pointing at `version`."""
    private_key, _ = ensure_key(home)
    store = open_store((home / "store").resolve().as_uri())
    try:
        store.resolve(NAME, version)
    except NotFoundError:
        with tempfile.TemporaryDirectory() as work:
            result = train(Path(work), fast=fast)
            bundle = sealserve.pack(
                result.model,
                name=NAME,
                version=version,
                private_key=private_key,
                out=Path(work) / "bundle.zip",
                sample=result.features,
                features=FEATURE_OVERRIDES,
                class_labels=result.class_labels,
                metrics=result.metrics,
                reports=result.reports,
                description="Risk of diabetes from seven clinical measurements (Pima Indians data).",
            )
            store.push(bundle)
    store.promote(NAME, version, "production")
    return store.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(".sealserve"))
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--version", default=VERSION)
    args = parser.parse_args()
    url = publish(args.home, fast=args.fast, version=args.version)
    print(f"{NAME} {args.version} is production in {url}")


if __name__ == "__main__":
    main()
