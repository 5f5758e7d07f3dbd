"""End to end through the real CLI and the real server: keygen → pack → verify → push → promote → serve → predict,
then every tamper case, each refused with its own message by `sealserve verify` and by the server, never deserialized.

The tampered bundles carry a pickle whose loading writes a marker file, and the server is configured to load them with
`allow_pickle: true` and `trusted_types: [builtins.open]`: deserializing any of them would create its marker. A control
bundle, identical but untampered, proves the payload is live (its marker appears). One server serves every case.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import skops.io
import yaml
from sklearn.linear_model import LogisticRegression

from sealserve.bundle import keys
from sealserve.packing.build import pack, sign_folder
from sealserve.store import LocalStore
from tests.conftest import CLASS_LABELS, FEATURE_OVERRIDES
from tests.support.server import serve, wait_until
from tests.support.tamper import flip_byte, marker_pickle, padding_offset

SEALSERVE = str(Path(sys.executable).with_name("sealserve"))
RECORD = {"age": 50, "bmi": 31.5, "general_health": "VERY_GOOD"}
PICKLE_OPTIONS = {"allow_pickle": True, "trusted_types": ["builtins.open"]}  # what makes deserializing = writing the marker


@dataclass(frozen=True)
class Case:
    """One refused model: how its store copy was damaged, what `verify` and the server must say."""

    name: str
    version: str
    error: str
    message: str


# Refused by verification, so `sealserve verify` on the stored copy must fail the same way.
VERIFY_CASES = [
    Case("evil_flip", "1.0.0", "DigestMismatchError", "SHA-256 mismatch for model.joblib"),
    Case("evil_added", "1.0.0", "ExtraFileError", "file not covered by the signature: extra.txt"),
    Case("evil_deleted", "1.0.0", "MissingFileError", "signed file missing from bundle: reports/profile.html"),
    Case("evil_untrusted", "1.0.0", "UnknownKeyError", "signer key 'stranger' is not in the keyring"),
    Case("evil_revoked", "1.0.0", "RevokedKeyError", "key 'old-key' is revoked"),
    Case("evil_renamed", "1.0.0", "IdentityMismatchError", "bundle is signed as 'evil_original', but 'evil_renamed' was requested"),
    Case("evil_version", "2.0.0", "IdentityMismatchError", "bundle is signed as version '1.0.0', but '2.0.0' was requested"),
]
# Correctly signed and verified; refused by the loader instead.
LOAD_CASES = [
    Case("evil_restricted", "1.0.0", "UnsafeModelError", "refers to builtins.open, which is not on the unpickling allow-list"),
    Case("evil_nopickle", "1.0.0", "UnsafeModelError", "model.joblib is pickle-based (joblib); loading it needs allow_pickle: true"),
]


def run_chain(chain: Sequence[Sequence[str | Path]]) -> list[subprocess.CompletedProcess[str]]:
    """Run CLI commands one after the other, stopping at the first failure."""
    results = []
    for command in chain:
        results.append(subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=120, check=False))
        if results[-1].returncode != 0:
            break
    return results


def succeeded(*results: subprocess.CompletedProcess[str]) -> None:
    for result in results:
        assert result.returncode == 0, f"{' '.join(result.args[1:3])} failed:\n{result.stdout}{result.stderr}"


@dataclass
class World:
    markers: Path
    verified: subprocess.CompletedProcess[str]
    refusals: dict[str, subprocess.CompletedProcess[str]]
    client: httpx.Client


# Who signs each crafted bundle; evil_original and evil_version are renamed in the store after the push.
EVIL_SIGNERS = {
    "evil_control": "signer",
    "evil_flip": "signer",
    "evil_added": "signer",
    "evil_deleted": "signer",
    "evil_untrusted": "stranger",
    "evil_revoked": "old-key",
    "evil_restricted": "signer",
    "evil_nopickle": "signer",
    "evil_original": "signer",
    "evil_version": "signer",
}


def evil_bundle(base: Path, out: Path, *, name: str, key: keys.SigningKey, markers: Path, version: str = "1.0.0") -> Path:
    """A copy of the packed joblib bundle renamed to `name`, its model swapped for a marker pickle, signed by `key`."""
    folder = Path(shutil.copytree(base, out / name))
    metadata = json.loads((folder / "sealserve.json").read_text())
    metadata.update(name=name, version=version)
    (folder / "sealserve.json").write_text(json.dumps(metadata))
    (folder / "model.joblib").write_bytes(marker_pickle(markers / name))
    sign_folder(folder, key, subject=name)
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, fitted_model: LogisticRegression, training_frame: pd.DataFrame) -> Iterator[World]:
    root = tmp_path_factory.mktemp("e2e")
    store, keyring, markers = root / "store", root / "keyring.json", root / "markers"
    markers.mkdir()
    store_url = store.as_uri()

    # The data scientist's files: a fitted model saved as .skops, a sample CSV, feature overrides, a report.
    skops.io.dump(fitted_model, root / "model.skops")
    training_frame.to_csv(root / "sample.csv", index=False)
    (root / "features.json").write_text(json.dumps(FEATURE_OVERRIDES))
    (root / "profile.html").write_text("<html><body>data profile</body></html>\n")
    labels = [arg for value, label in CLASS_LABELS.items() for arg in ("--class-label", f"{value}={label}")]
    signer_pem = root / "signer.pem"
    old_key = keys.generate(keys.Algorithm.ECDSA_P256, "old-key")  # a previous signer: trusted as retiring, then revoked
    assert old_key.public_key is not None
    (root / "old-public.pem").write_bytes(keys.public_pem(old_key.public_key))

    succeeded(*run_chain([[SEALSERVE, "keygen", "--private-key", signer_pem, "--keyring", keyring, "--kid", "signer"]]))
    with ThreadPoolExecutor(max_workers=2) as pool:
        pack_command = [SEALSERVE, "pack", root / "model.skops", "--name", "risk", "--version", "1.0.0", "--private-key", signer_pem]
        sample_options = ["--sample", root / "sample.csv", "--features", root / "features.json", "--report", root / "profile.html"]
        good = pool.submit(
            run_chain,
            [
                [*pack_command, "--out", root / "risk.zip", *sample_options, *labels],
                [SEALSERVE, "verify", root / "risk.zip", "--keyring", keyring, "--name", "risk", "--version", "1.0.0"],
                [SEALSERVE, "push", root / "risk.zip", store_url],
                [SEALSERVE, "promote", "risk", "1.0.0", "production", store_url],
            ],
        )
        trust = pool.submit(
            run_chain,
            [
                [SEALSERVE, "keys", "add", "--public-key", root / "old-public.pem", "--keyring", keyring, "--kid", "old-key"],
                [SEALSERVE, "keys", "revoke", "old-key", "--keyring", keyring],
            ],
        )

        # Meanwhile the attacker's side: correctly signed marker-pickle bundles (made with the library: attackers do not
        # need our CLI), pushed, then damaged directly in the shared store.
        signer = keys.read_private_key(signer_pem)
        signing = {"signer": signer, "stranger": keys.generate(keys.Algorithm.ECDSA_P256, "stranger"), "old-key": old_key}
        base = pack(
            fitted_model,
            name="base",
            version="1.0.0",
            private_key=signer,
            out=root / "pickle-base",
            sample=training_frame,
            features=FEATURE_OVERRIDES,
            class_labels=CLASS_LABELS,
            reports=[root / "profile.html"],
            format="joblib",
            allow_pickle=True,
        )
        library = LocalStore(store)
        for name, who in EVIL_SIGNERS.items():
            library.push(evil_bundle(base, root / "crafted", name=name, key=signing[who], markers=markers))
        flipped = store / "evil_flip" / "1.0.0" / "model.joblib"
        flip_byte(flipped, padding_offset(flipped.read_bytes()))  # one byte, and the pickle stays live
        (store / "evil_added" / "1.0.0" / "extra.txt").write_text("not signed\n")
        (store / "evil_deleted" / "1.0.0" / "reports" / "profile.html").unlink()
        os.rename(store / "evil_original", store / "evil_renamed")
        os.rename(store / "evil_version" / "1.0.0", store / "evil_version" / "2.0.0")
        packed, verified, pushed, promoted = good.result()
        succeeded(packed, verified, pushed, promoted, *trust.result())

    entries: list[dict[str, Any]] = [{"name": "risk", "store_url": store_url, "ref": "production", "keyring": str(keyring)}]
    for case in [*VERIFY_CASES, *LOAD_CASES, Case("evil_control", "1.0.0", "", "")]:
        options = {"evil_restricted": {"allow_pickle": True}, "evil_nopickle": {"trusted_types": ["builtins.open"]}}
        entries.append(
            {
                "name": case.name,
                "store_url": store_url,
                "ref": case.version,
                "keyring": str(keyring),
                **options.get(case.name, PICKLE_OPTIONS),
            }
        )
    config = root / "service.yaml"
    config.write_text(yaml.safe_dump({"service_title": "Security E2E", "models": entries}))

    # `sealserve verify` on each damaged store copy runs while the server starts.
    checks = [
        subprocess.Popen(
            [
                SEALSERVE,
                "verify",
                str(store / case.name / case.version),
                "--keyring",
                str(keyring),
                "--name",
                case.name,
                "--version",
                case.version,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for case in VERIFY_CASES
    ]
    with serve(config, root, ready=False) as server, server.client() as client:
        refusals = {}
        for case, process in zip(VERIFY_CASES, checks, strict=True):
            stdout, stderr = process.communicate(timeout=120)
            refusals[case.name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

        def every_model_attempted() -> bool:
            models = client.get("/api/health/ready").json()["models"]
            return len(models) == len(entries) and all(m["ready"] or m["error"] for m in models)

        wait_until(every_model_attempted, timeout=60)
        yield World(markers, verified, refusals, client)


def test_cli_verify_accepts_the_packed_bundle(world: World) -> None:
    assert "verified risk 1.0.0 (skops), signer signer, digest sha256:" in world.verified.stdout


def test_the_good_model_serves_predictions_with_its_provenance(world: World) -> None:
    response = world.client.post("/api/models/risk/prediction", json=RECORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"]) == ("risk", "1.0.0")
    assert body["output"]["prediction"] in CLASS_LABELS.values()
    assert sum(body["output"]["probabilities"].values()) == pytest.approx(1.0)
    detail = world.client.get("/api/models/risk").json()
    assert detail["ready"] is True
    assert detail["signer"] == "signer"
    assert f"digest sha256:{detail['digest']}" in world.verified.stdout


@pytest.mark.parametrize("case", VERIFY_CASES, ids=lambda case: case.name)
def test_cli_verify_refuses_each_tampered_store_copy_with_its_own_message(world: World, case: Case) -> None:
    result = world.refusals[case.name]
    assert result.returncode == 1
    assert f"error ({case.error}): {case.message}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", [*VERIFY_CASES, *LOAD_CASES], ids=lambda case: case.name)
def test_the_server_reports_each_refused_model_with_its_reason_and_answers_503(world: World, case: Case) -> None:
    ready = world.client.get("/api/health/ready")
    assert ready.status_code == 503
    state = next(m for m in ready.json()["models"] if m["name"] == case.name)
    assert state["ready"] is False
    assert case.message in state["error"]
    detail = world.client.get(f"/api/models/{case.name}").json()
    assert detail["ready"] is False
    assert case.message in detail["error"]
    refused = world.client.post(f"/api/models/{case.name}/prediction", json=RECORD)
    assert refused.status_code == 503
    assert case.message in refused.json()["error"]["message"]


def test_no_tampered_or_refused_model_was_ever_deserialized(world: World) -> None:
    """The control (same payload, untampered, trusted global) wrote its marker; nothing else did."""
    assert sorted(path.name for path in world.markers.iterdir()) == ["evil_control"]
