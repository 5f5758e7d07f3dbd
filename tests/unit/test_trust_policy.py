"""trust.yaml and its configuration: precise errors for a malformed policy, the service config's rules for
`trust_policy`, and the CLI's `sign`, `pack --certificate` and `verify --trust-policy --json`."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner, Result

from sealserve.bundle.keyring import Keyring
from sealserve.cli.main import app
from sealserve.errors import ConfigError, TrustPolicyError
from sealserve.serve.config import BundleSource, parse_config
from sealserve.serve.settings import Overrides, load_settings
from sealserve.store import LocalStore
from sealserve.trust.identity.policy import TrustPolicy
from sealserve.trust.verify import verify_bundle
from tests.security.identity_fixtures import RELEASE, World, build_world, sign_by_certificate


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("policy"))


def sealserve(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args], prog_name="sealserve")


ANY = "rules:\n  - models: ['*']\n    signers: "


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ANY + "[{kid: a}]\n", "rule 1 accepts key 'a', but the policy names no keyring"),
        (
            ANY + "[{certificate: {anchor: corp, san: x}}]\n",
            "rule 1 names anchor 'corp', which is not under anchors",
        ),
        (
            "anchors: {corp: {certificates: [a.pem], trusted_root: t.json}}\nrules: []\n",
            "an anchor has either certificates (PEM CA files) or trusted_root",
        ),
        (
            "anchors: {corp: {certificates: [corp-root.pem]}}\nrules:\n  - models: ['*']\n"
            "    signers: [{certificate: {anchor: corp, san_regex: '('}}]\n",
            "the identity regex is not a valid regular expression",
        ),
        (
            "anchors: {s: {trusted_root: trusted_root.json}}\n" + ANY + "[{sigstore: {anchor: s, identity: x}}]\n",
            "a sigstore signer names one of issuer/issuer_regex and one of identity/identity_regex",
        ),
        (
            "anchors: {corp: {certificates: [corp-root.pem]}}\n" + ANY + "[{sigstore: {anchor: corp, issuer: i, identity: x}}]\n",
            "rule 1: anchor 'corp' has no trusted_root",
        ),
        ("rules: [\n", "is not valid YAML"),
        ("keyring: keyring.json\nrules: []\n", "invalid at rules"),
        (
            "anchors: {corp: {certificates: [absent.pem]}}\n" + ANY + "[{certificate: {anchor: corp, san: x}}]\n",
            "cannot read",
        ),
        (
            "anchors: {s: {trusted_root: keyring.json}}\n" + ANY + "[{sigstore: {anchor: s, issuer: i, identity: x}}]\n",
            "is not a Sigstore trusted root",
        ),
    ],
)
def test_a_malformed_policy_is_refused_with_its_reason(world: World, text: str, message: str) -> None:
    path = world.root / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TrustPolicyError) as caught:
        TrustPolicy.load(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value) or "anchor" in str(caught.value)


def test_the_policy_of_the_issue_loads(world: World) -> None:
    policy = TrustPolicy.load(world.policy)
    assert sorted(verifier.method for verifier in policy.verifiers) == ["certificate", "key", "sigstore"]
    assert [rule.models for rule in policy.rules] == [("risk", "fraud_*"), ("*",)]


def test_a_keyring_alone_trusts_every_key_for_every_name(bundle_copy: Path, trusted_keyring: Keyring) -> None:
    verified = verify_bundle(bundle_copy, trusted_keyring)
    verified.discard()
    assert verified.rule == "keyring: every key, every model"
    assert verified.provenance.describe()["method"] == "key"


BUNDLE = {"name": "risk", "store_url": "file:///s"}


def test_a_model_names_a_keyring_or_a_trust_policy() -> None:
    with pytest.raises(ConfigError, match="needs a keyring or a trust_policy, not both"):
        parse_config({"models": [{**BUNDLE, "keyring": "/k.json", "trust_policy": "/t.yaml"}]}, {})
    with pytest.raises(ConfigError, match="needs a keyring or a trust_policy"):
        parse_config({"models": [BUNDLE]}, {})


def test_a_top_level_trust_policy_reaches_every_bundle_model_and_conflicts_with_a_keyring() -> None:
    config = parse_config({"trust_policy": "/t.yaml", "models": [BUNDLE, {**BUNDLE, "name": "b", "trust_policy": "/own.yaml"}]}, {})
    first, second = config.models
    assert isinstance(first, BundleSource)
    assert isinstance(second, BundleSource)
    assert (first.trust_policy, first.keyring, second.trust_policy) == (Path("/t.yaml"), None, Path("/own.yaml"))
    with pytest.raises(ConfigError, match="model 'risk' sets keyring, and the top-level trust_policy applies to it"):
        parse_config({"trust_policy": "/t.yaml", "models": [{**BUNDLE, "keyring": "/k.json"}]}, {})


def test_sealserve_sign_then_verify_json_shows_the_provenance(world: World, packed_bundle: Path, tmp_path: Path) -> None:
    archive = tmp_path / "risk.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(packed_bundle.rglob("*")):
            if path.is_file():
                handle.write(path, path.relative_to(packed_bundle).as_posix())
    certificate, key, chain = world.chain_files(world.leaf())
    signed = sealserve("sign", archive, "--private-key", key, "--certificate", certificate, "--chain", chain)
    assert signed.exit_code == 0, signed.output
    assert f"bundle risk at {archive} signed with certificate {certificate}" in signed.stdout
    checked = sealserve("verify", archive, "--trust-policy", world.policy, "--json")
    assert checked.exit_code == 0, checked.output
    document = json.loads(checked.stdout)
    assert document["provenance"]["method"] == "certificate"
    assert document["provenance"]["identity"] == RELEASE
    assert document["provenance"]["rule"] == "rule 1 (models: risk, fraud_*)"
    assert document["provenance"]["digest"].startswith("sha256:")
    keyring_only = sealserve("verify", archive, "--keyring", world.root / "keyring.json")
    assert keyring_only.exit_code == 1
    assert (
        "error (UntrustedCertificateError): bundle is signed by certificate, and the trust policy (keyring) names no certificate anchor"
        in (keyring_only.stderr)
    )


def test_verify_needs_exactly_one_source_of_trust(world: World, packed_bundle: Path) -> None:
    neither = sealserve("verify", packed_bundle)
    both = sealserve("verify", packed_bundle, "--keyring", world.root / "keyring.json", "--trust-policy", world.policy)
    for result in (neither, both):
        assert result.exit_code == 1
        assert "give --keyring or --trust-policy" in result.stderr


def test_pack_signs_with_a_certificate(world: World, fitted_model: LogisticRegression, tmp_path: Path) -> None:
    model = tmp_path / "model.skops"
    skops.io.dump(fitted_model, model)
    certificate, key, chain = world.chain_files(world.leaf())
    out = tmp_path / "fraud_cards"
    arguments = ["--name", "fraud_cards", "--version", "1.0.0", "--out", out, "--no-compile"]
    packed = sealserve("pack", model, *arguments, "--private-key", key, "--certificate", certificate, "--chain", chain)
    assert packed.exit_code == 0, packed.output
    checked = sealserve("verify", out, "--trust-policy", world.policy)
    assert checked.exit_code == 0, checked.output
    assert f"signer certificate:{RELEASE} (issuer CN=Bank Release CA,O=Bank Example)" in checked.stdout
    assert "admitted by rule 1 (models: risk, fraud_*)" in checked.stdout
    wrong = sealserve("pack", model, *arguments[:-3], "--out", tmp_path / "x", "--private-key", world.root / "issued" / "absent.key")
    assert wrong.exit_code == 1


def test_a_certificate_for_another_key_is_refused_at_signing(world: World, bundle_copy: Path) -> None:
    certificate, _, _ = world.chain_files(world.leaf())
    _, other_key, _ = world.chain_files(world.leaf())
    result = sealserve("sign", bundle_copy, "--private-key", other_key, "--certificate", certificate)
    assert result.exit_code == 1
    assert f"{certificate} does not certify the private key's public key" in result.stderr


def test_a_model_dir_served_under_a_top_level_trust_policy_needs_no_keyring(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text("trust_policy: /etc/sealserve/trust.yaml\n")
    settings = load_settings(config, {}, Overrides(model_dir=str(tmp_path / "bundle"), model_name="risk"))
    (model,) = settings.config.models
    assert isinstance(model, BundleSource)
    assert (model.name, model.trust_policy, model.keyring) == ("risk", Path("/etc/sealserve/trust.yaml"), None)
    with pytest.raises(ConfigError, match="model 'risk' sets keyring, and the top-level trust_policy applies to it"):
        load_settings(config, {}, Overrides(model_dir=str(tmp_path / "bundle"), model_name="risk", keyring="/k.json"))


def test_a_store_listing_names_a_certificate_signer(world: World, bundle_copy: Path, tmp_path: Path) -> None:
    """Informational until verified, like a kid: the leaf's first SAN."""
    store = LocalStore(tmp_path / "store")
    store.push(sign_by_certificate(bundle_copy, world.leaf(), (world.intermediate,)))
    assert [info.signer for info in store.versions("risk")] == [f"certificate:{RELEASE}"]
