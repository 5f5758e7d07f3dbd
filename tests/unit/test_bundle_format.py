"""The bundle format's compatibility rule: same major with unknown optional fields reads; a newer major is refused by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sealserve.bundle import keys
from sealserve.bundle.format_version import FORMAT_MAJOR
from sealserve.bundle.keyring import Keyring
from sealserve.errors import BundleFormatError, NewerFormatError
from sealserve.packing.build import library_versions, sign_folder
from sealserve.store import LocalStore
from sealserve.trust.verify import verify_bundle
from tests.conftest import make_training_frame


def rewrite(bundle: Path, key: keys.SigningKey, change: Any) -> dict[str, Any]:
    """Change the signed metadata the way a newer packer would, and sign it again."""
    metadata = json.loads((bundle / "sealserve.json").read_text())
    change(metadata)
    (bundle / "sealserve.json").write_text(json.dumps(metadata))
    sign_folder(bundle, key, subject="risk")
    return metadata


def add_future_fields(metadata: dict[str, Any]) -> None:
    metadata["explanations"] = {"method": "shap", "baseline": [0.1, 0.2]}
    metadata["output"]["target_names"] = ["risk"]
    metadata["features"][0]["unit"] = "years"
    metadata["statistics"][next(iter(metadata["statistics"]))]["quantiles"] = [0.0, 0.5, 1.0]


def test_the_packer_writes_the_lowest_major_that_expresses_the_bundle(packed_bundle: Path) -> None:
    assert json.loads((packed_bundle / "sealserve.json").read_text())["schema_version"] == 1 < FORMAT_MAJOR


def test_unknown_optional_fields_of_the_same_major_are_ignored_and_the_model_predicts_the_same(
    bundle_copy: Path, packed_bundle: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey
) -> None:
    rewrite(bundle_copy, signing_key, add_future_fields)
    original, extended = verify_bundle(packed_bundle, trusted_keyring), verify_bundle(bundle_copy, trusted_keyring)
    try:
        assert extended.metadata == original.metadata
        frame = make_training_frame(rows=20, seed=3)[0].to_numpy(dtype="float64")
        assert (extended.load().predict(frame) == original.load().predict(frame)).all()
    finally:
        original.discard()
        extended.discard()


def test_a_newer_major_is_refused_naming_the_format_it_needs_and_the_packer(
    bundle_copy: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey
) -> None:
    rewrite(bundle_copy, signing_key, lambda metadata: metadata.update(schema_version=FORMAT_MAJOR + 1, output={"kind": "new"}))
    packer = library_versions()["sealserve"]
    newer = FORMAT_MAJOR + 1
    expected = (
        rf"bundle format {newer} \(packed by sealserve {packer}\) needs a server that reads bundle format {newer}; "
        rf"this server reads bundle format {FORMAT_MAJOR} and older: upgrade the server"
    )
    with pytest.raises(NewerFormatError, match=expected):
        verify_bundle(bundle_copy, trusted_keyring)


@pytest.mark.parametrize("major", [0, "1", True, 1.5, None])
def test_a_major_that_is_not_a_positive_integer_is_refused(
    bundle_copy: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey, major: object
) -> None:
    rewrite(bundle_copy, signing_key, lambda metadata: metadata.update(schema_version=major))
    with pytest.raises(BundleFormatError, match=r"sealserve\.json is invalid at schema_version: .* is not a bundle format major"):
        verify_bundle(bundle_copy, trusted_keyring)


def test_a_store_keeps_a_newer_major_for_the_servers_that_read_it(bundle_copy: Path, signing_key: keys.SigningKey, tmp_path: Path) -> None:
    rewrite(bundle_copy, signing_key, lambda metadata: metadata.update(schema_version=FORMAT_MAJOR + 1))
    info = LocalStore(tmp_path / "store").push(bundle_copy)
    assert (info.name, info.version) == ("risk", "1.0.0")


def test_a_newer_major_with_an_unsafe_name_is_still_refused_by_the_store(
    bundle_copy: Path, signing_key: keys.SigningKey, tmp_path: Path
) -> None:
    rewrite(bundle_copy, signing_key, lambda metadata: metadata.update(schema_version=FORMAT_MAJOR + 1, name="../escape"))
    with pytest.raises(BundleFormatError, match=r"model name '\.\./escape'"):
        LocalStore(tmp_path / "store").push(bundle_copy)


def kmeans_bundle(root: Path, key: keys.SigningKey) -> Path:
    from sklearn.cluster import KMeans

    from sealserve.packing.build import pack

    frame = make_training_frame()[0][["age", "bmi"]]
    model = KMeans(n_clusters=2, n_init=1, random_state=0).fit(frame.to_numpy())
    return pack(model, name="risk", version="1.0.0", private_key=key, out=root / "clusters", sample=frame, compiled=False)


def test_a_new_task_is_written_as_format_2_and_a_format_1_server_refuses_it_by_name(
    tmp_path: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = kmeans_bundle(tmp_path, signing_key)
    written = json.loads((bundle / "sealserve.json").read_text())
    assert (written["schema_version"], written["output"]["task"]) == (2, "clustering")
    verify_bundle(bundle, trusted_keyring).discard()  # this server reads it
    monkeypatch.setattr("sealserve.bundle.format_version.FORMAT_MAJOR", 1)  # a server of the release before
    with pytest.raises(NewerFormatError, match=r"needs a server that reads bundle format 2; this server reads bundle format 1 and older"):
        verify_bundle(bundle, trusted_keyring)


def test_a_new_task_under_format_1_is_refused_as_inconsistent(
    tmp_path: Path, trusted_keyring: Keyring, signing_key: keys.SigningKey
) -> None:
    bundle = kmeans_bundle(tmp_path, signing_key)
    rewrite(bundle, signing_key, lambda metadata: metadata.update(schema_version=1))
    with pytest.raises(BundleFormatError, match="task clustering needs bundle format 2, not 1"):
        verify_bundle(bundle, trusted_keyring)


def test_a_classification_bundle_writes_no_field_of_format_2(packed_bundle: Path) -> None:
    output = json.loads((packed_bundle / "sealserve.json").read_text())["output"]
    assert set(output) == {"task", "classes", "probabilities"}
