"""Train, pack + sign, push and promote the two census income models into a store.

Usage::

    python examples/census_income/publish.py --home .sealserve-census [--fast]

Creates (once) a signing key and keyring under HOME, then trains both models, packs each with its
reports in the default safe format (skops, no pickle), pushes them to file://HOME/store and points
their `production` alias at VERSION. Re-running with versions already in the store only re-points
the aliases: versions are immutable.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train import TrainedModel, train

import sealserve
from sealserve.bundle import keyring
from sealserve.errors import NotFoundError
from sealserve.store import Store, open_store

INCOME, RECORDS = "census_income", "census_dict"
NAMES = (INCOME, RECORDS)
VERSION = "1.0.0"
#: The same inputs for both models. Bounds are the census's own (ages 17+, top codes 99999 and 99 hours);
#: categories and nullability are derived from the training data. The schema is kept strict on purpose: the
#: pipeline would take unseen labels (its encoder ignores them) and, ending in gradient boosting, nulls anywhere,
#: but clients get closed enums and only the fields the census left unrecorded may be null (see `strict`).
FEATURE_OVERRIDES: dict[str, dict[str, Any]] = {
    "age": {"kind": "integer", "minimum": 17, "maximum": 100, "description": "Age in years."},
    "workclass": {"description": "Class of worker (null: not recorded)."},
    "education": {"description": "Highest level of education completed."},
    "marital_status": {"description": "Marital status."},
    "occupation": {"description": "Occupation (null: not recorded)."},
    "relationship": {"description": "Relationship to the householder."},
    "capital_gain": {"kind": "integer", "minimum": 0, "maximum": 99999, "description": "Capital gains in the year (USD)."},
    "capital_loss": {"kind": "integer", "minimum": 0, "maximum": 99999, "description": "Capital losses in the year (USD)."},
    "hours_per_week": {"kind": "integer", "minimum": 1, "maximum": 99, "description": "Usual hours worked per week."},
    "native_country": {"description": "Country of birth (null: not recorded)."},
}
UNRECORDED = ("workclass", "occupation", "native_country")
CATEGORIES = ("workclass", "education", "marital_status", "occupation", "relationship", "native_country")


def strict(overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Closed categories, and no null where the census always recorded a value, whatever the model would accept."""
    result = {}
    for name, spec in overrides.items():
        result[name] = dict(spec)
        if name not in UNRECORDED:
            result[name]["nullable"] = False
        if name in CATEGORIES:
            result[name]["allow_unknown"] = False
    return result


DESCRIPTIONS = {
    INCOME: "Whether yearly income exceeds $50K (UCI Adult census data): a ColumnTransformer pipeline on a DataFrame.",
    RECORDS: "Probability that yearly income exceeds $50K (UCI Adult census data): DictVectorizer + random forest on dict records.",
}


def ensure_key(home: Path) -> tuple[Path, Path]:
    """The example's signing key and the keyring that trusts it, created on first use."""
    private_key, keyring_path = home / "signing-key.pem", home / "keyring.json"
    if not private_key.exists():
        home.mkdir(parents=True, exist_ok=True)
        keyring.create_signing_key(private_key, keyring_path, kid="census-example-key")
    return private_key, keyring_path


def _stored(store: Store, name: str, version: str) -> bool:
    try:
        store.resolve(name, version)
    except NotFoundError:
        return False
    return True


def pack_model(trained: TrainedModel, name: str, version: str, private_key: Path, out: Path) -> Path:
    """One signed bundle in the default format (skops), with its reports and held-out metrics."""
    return sealserve.pack(
        trained.model,
        name=name,
        version=version,
        private_key=private_key,
        out=out,
        sample=trained.sample,
        features=strict(FEATURE_OVERRIDES),
        class_labels=trained.class_labels,
        metrics=trained.metrics,
        reports=trained.reports,
        description=DESCRIPTIONS[name],
    )


def publish(home: Path, *, fast: bool = False, version: str = VERSION) -> str:
    """Return the store URL holding both models with `production` pointing at `version`."""
    private_key, _ = ensure_key(home)
    store = open_store((home / "store").resolve().as_uri())
    missing = [name for name in NAMES if not _stored(store, name, version)]
    if missing:
        # One thread, as in train.py: pack predicts the whole sample several times, and OpenMP threads spin on a busy machine.
        with tempfile.TemporaryDirectory() as work, threadpool_limits(limits=1):
            result = train(Path(work), fast=fast)
            trained = {INCOME: result.income, RECORDS: result.records}
            for name in missing:
                store.push(pack_model(trained[name], name, version, private_key, Path(work) / f"{name}.zip"))
    for name in NAMES:
        store.promote(name, version, "production")
    return store.url


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(".sealserve-census"))
    parser.add_argument("--fast", action="store_true", help="train with train.py --fast (seconds, not minutes)")
    parser.add_argument("--version", default=VERSION)
    args = parser.parse_args()
    url = publish(args.home, fast=args.fast, version=args.version)
    print(f"{', '.join(NAMES)} {args.version} are production in {url}")


if __name__ == "__main__":
    main()
