"""Train the KServe iris example (an SVC), pack + sign it, push it and make it `production`.

Usage::

    python examples/iris_v2/publish.py --home .sealserve-iris

The same model as KServe's sklearn-iris sample: ``svm.SVC(gamma="scale")`` fitted on the
iris data that ships with scikit-learn, on a plain numpy array. sealserve packs it as skops (not
joblib), records the four features with their units and plausible ranges and the species names of
the classes, signs it with a key under HOME (created once) and stores it in file://HOME/store.
Re-running only re-points the alias.
"""

import argparse
import tempfile
from pathlib import Path

import pandas as pd
from sklearn import datasets, svm

import sealserve
from sealserve.bundle import keyring
from sealserve.errors import NotFoundError
from sealserve.store import open_store

NAME = "sklearn-iris"
VERSION = "1.0.0"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = {0: "setosa", 1: "versicolor", 2: "virginica"}
FEATURE_OVERRIDES = {
    name: {"minimum": 0, "maximum": 30, "description": name.replace("_", " ").capitalize() + " (cm)."} for name in FEATURES
}


def train() -> tuple[svm.SVC, pd.DataFrame]:
    """The seed's model: an SVC on all 150 flowers; the sample (for schema and drift) has readable column names."""
    iris = datasets.load_iris()
    model = svm.SVC(gamma="scale").fit(iris.data, iris.target)
    return model, pd.DataFrame(iris.data, columns=FEATURES)


def ensure_key(home: Path) -> tuple[Path, Path]:
    private_key, keyring_path = home / "signing-key.pem", home / "keyring.json"
    if not private_key.exists():
        home.mkdir(parents=True, exist_ok=True)
        keyring.create_signing_key(private_key, keyring_path, kid="iris-example-key")
    return private_key, keyring_path


def publish(home: Path, version: str = VERSION) -> str:
    """Return the store URL holding the model with `production` pointing at `version`."""
    private_key, _ = ensure_key(home)
    store = open_store((home / "store").resolve().as_uri())
    try:
        store.resolve(NAME, version)
    except NotFoundError:
        model, sample = train()
        with tempfile.TemporaryDirectory() as work:
            bundle = sealserve.pack(
                model,
                name=NAME,
                version=version,
                private_key=private_key,
                out=Path(work) / "bundle.zip",
                sample=sample,
                features=FEATURE_OVERRIDES,
                class_labels=SPECIES,
                description="Iris species from sepal and petal measurements (KServe's sklearn-iris sample).",
            )
            store.push(bundle)
    store.promote(NAME, version, "production")
    return store.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(".sealserve-iris"))
    parser.add_argument("--version", default=VERSION)
    args = parser.parse_args()
    url = publish(args.home, args.version)
    print(f"{NAME} {args.version} is production in {url}")


if __name__ == "__main__":
    main()
