"""Signers trusted by identity, and the policy of who may sign which model: each refusal beside a live control.

Certificates come from a private PKI made here; keyless signatures from a private Sigstore instance whose trusted
root is a file; nothing touches the network. Every control is the same bundle and signer with the one fault removed.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from model_signing import signing as model_signing
from model_signing import verifying as model_verifying
from OpenSSL import crypto

from sealserve.bundle import keys
from sealserve.errors import (
    BadSignatureError,
    RevokedSignerError,
    SignatureFormatError,
    SignerNotGrantedError,
    TransparencyLogError,
    UntrustedCertificateError,
    VerificationError,
)
from sealserve.packing import signing
from sealserve.packing.build import sign_folder
from sealserve.trust.identity.policy import TrustPolicy
from sealserve.trust.verify import VerifiedBundle, verify_bundle
from tests.security.identity_fixtures import GITHUB, RELEASE, WORKFLOW, World, build_world, rename, sign_by_certificate
from tests.support.pki import NOW, YEAR, make_ca, make_leaf
from tests.support.sigstore_instance import SigstoreInstance


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("identity"))


def verify(folder: Path, policy: Path) -> VerifiedBundle:
    verified = verify_bundle(folder, TrustPolicy.load(policy))
    verified.discard()
    return verified


def refused(folder: Path, policy: Path, kind: type[VerificationError]) -> str:
    with pytest.raises(kind) as caught:
        verify(folder, policy)
    return str(caught.value)


# Certificates: `sealserve sign --certificate` and `model_signing sign certificate`.


def test_control_a_release_certificate_signs_risk(world: World, bundle_copy: Path) -> None:
    verified = verify(sign_by_certificate(bundle_copy, world.leaf(), (world.intermediate,)), world.policy)
    assert verified.provenance.describe() == {
        "method": "certificate",
        "identity": RELEASE,
        "issuer": "CN=Bank Release CA,O=Bank Example",
        "anchor": "corp-ca",
        "digest": f"sha256:{verified.digest}",
        "rule": "rule 1 (models: risk, fraud_*)",
    }


def test_model_signing_certificate_signatures_verify(world: World, bundle_copy: Path, tmp_path: Path) -> None:
    """The OpenSSF library's own certificate signer (leaf + chain in the Sigstore bundle) is read as ours is."""
    certificate, key, chain = world.chain_files(world.leaf())
    (bundle_copy / "model.sig").unlink()
    config = model_signing.Config().use_certificate_signer(private_key=key, signing_certificate=certificate, certificate_chain=[chain])
    config.sign(bundle_copy, tmp_path / "model.sig")
    shutil.move(tmp_path / "model.sig", bundle_copy / "model.sig")
    assert verify(bundle_copy, world.policy).signer.identity == RELEASE


def test_a_leaf_without_extended_key_usage_may_sign(world: World, bundle_copy: Path) -> None:
    """codeSigning is required only when the leaf restricts its usage at all."""
    verified = verify(sign_by_certificate(bundle_copy, world.leaf(code_signing=None), (world.intermediate,)), world.policy)
    assert verified.signer.method == "certificate"


def test_a_leaf_not_for_code_signing_is_refused(world: World, bundle_copy: Path) -> None:
    sign_by_certificate(bundle_copy, world.leaf(code_signing=False), (world.intermediate,))
    assert "is not allowed to sign code (no codeSigning extended key usage)" in refused(
        bundle_copy, world.policy, UntrustedCertificateError
    )


def test_an_expired_leaf_is_refused(world: World, bundle_copy: Path) -> None:
    leaf = world.leaf(not_before=NOW - 2 * YEAR, not_after=NOW - timedelta(days=1))
    message = refused(sign_by_certificate(bundle_copy, leaf, (world.intermediate,)), world.policy, UntrustedCertificateError)
    assert "certificate 'CN=model release,O=Bank Example' expired at" in message
    assert "re-sign with a current certificate, or use Sigstore" in message


def test_a_not_yet_valid_leaf_is_refused(world: World, bundle_copy: Path) -> None:
    leaf = world.leaf(not_before=NOW + timedelta(days=1), not_after=NOW + YEAR)
    message = refused(sign_by_certificate(bundle_copy, leaf, (world.intermediate,)), world.policy, UntrustedCertificateError)
    assert "certificate 'CN=model release,O=Bank Example' is not valid before" in message


def test_a_certificate_with_another_san_is_not_granted(world: World, bundle_copy: Path) -> None:
    sign_by_certificate(bundle_copy, world.leaf(emails=("marketing@bank.example",)), (world.intermediate,))
    message = refused(bundle_copy, world.policy, SignerNotGrantedError)
    assert message == (
        "signer certificate:marketing@bank.example is not granted model 'risk': "
        "rule 1 (models: risk, fraud_*) decides, and it does not accept this signer"
    )


def test_a_certificate_from_another_root_is_refused(world: World, bundle_copy: Path) -> None:
    """Same names, same SAN, a CA the operator never configured."""
    rogue_root = make_ca("Bank Root CA")
    rogue = make_ca("Bank Release CA", rogue_root)
    sign_by_certificate(bundle_copy, make_leaf(rogue, emails=(RELEASE,)), (rogue, rogue_root))
    message = refused(bundle_copy, world.policy, UntrustedCertificateError)
    assert message.startswith("certificate chain of 'CN=model release,O=Bank Example' does not lead to anchor 'corp-ca'")


def test_a_chain_missing_its_intermediate_is_refused(world: World, bundle_copy: Path) -> None:
    sign_by_certificate(bundle_copy, world.leaf(), ())
    assert "which is not an anchor" in refused(bundle_copy, world.policy, UntrustedCertificateError)


def test_a_signature_by_another_key_under_a_valid_certificate_is_refused(world: World, bundle_copy: Path) -> None:
    """The attacker attaches the release certificate (public) to a signature made with their own key."""
    release, attacker = world.leaf(), world.leaf()
    der = tuple(cert.certificate.public_bytes(serialization.Encoding.DER) for cert in (release, world.intermediate))
    signing.sign_folder(
        bundle_copy, signing.Credential(keys.SigningKey("", keys.Algorithm.ECDSA_P256, private_key=attacker.key), der), subject="risk"
    )
    assert "signature does not verify with the certificate of" in refused(bundle_copy, world.policy, BadSignatureError)


# Sigstore keyless, verified offline against the pinned trusted root.


def keyless(world: World, folder: Path, **options: object) -> Path:
    instance = options.pop("instance", world.sigstore)
    assert isinstance(instance, SigstoreInstance)
    return instance.sign_folder(folder, subject="risk", **{"identity": WORKFLOW, "issuer": GITHUB, **options})  # type: ignore[arg-type]


def test_control_a_ci_workflow_signs_keylessly(world: World, bundle_copy: Path) -> None:
    verified = verify(keyless(world, bundle_copy), world.policy)
    described = verified.provenance.describe()
    assert described["method"] == "sigstore"
    assert described["identity"] == WORKFLOW
    assert described["issuer"] == GITHUB
    assert described["rule"] == "rule 1 (models: risk, fraud_*)"
    assert verified.signer.signed_at is not None
    assert abs(verified.signer.signed_at - (NOW - timedelta(minutes=5))) < timedelta(seconds=2)


def test_another_workflow_identity_is_not_granted(world: World, bundle_copy: Path) -> None:
    keyless(world, bundle_copy, identity="https://github.com/bank/models/.github/workflows/experiment.yml@refs/heads/main")
    assert (
        "signer sigstore:https://github.com/bank/models/.github/workflows/experiment.yml@refs/heads/main is not granted model 'risk'"
        in refused(bundle_copy, world.policy, SignerNotGrantedError)
    )


def test_the_same_identity_from_another_issuer_is_not_granted(world: World, bundle_copy: Path) -> None:
    keyless(world, bundle_copy, issuer="https://gitlab.example/oidc")
    assert "rule 1 (models: risk, fraud_*) decides" in refused(bundle_copy, world.policy, SignerNotGrantedError)


def test_a_missing_inclusion_proof_is_refused(world: World, bundle_copy: Path) -> None:
    keyless(world, bundle_copy, proof="missing")
    assert refused(bundle_copy, world.policy, TransparencyLogError) == "Sigstore log entry has no inclusion proof with a signed checkpoint"


def test_a_forged_inclusion_proof_is_refused(world: World, bundle_copy: Path) -> None:
    keyless(world, bundle_copy, proof="forged")
    assert refused(bundle_copy, world.policy, TransparencyLogError) == (
        "Sigstore verification against anchor 'sigstore' failed: invalid log entry: inclusion proof contains invalid root hash"
    )


def test_a_certificate_expired_when_the_log_integrated_the_entry_is_refused(world: World, bundle_copy: Path) -> None:
    """The leaf lived ten minutes, an hour before the log saw the signature."""
    keyless(world, bundle_copy, leaf_not_before=NOW - timedelta(hours=2), signed_at=NOW - timedelta(hours=1))
    message = refused(bundle_copy, world.policy, TransparencyLogError)
    born, logged = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    assert message == (
        f"Sigstore verification against anchor 'sigstore' failed: the signing certificate was valid from {born.isoformat()} "
        f"to {(born + timedelta(minutes=10)).isoformat()}, but the log integrated the entry at {logged.isoformat()}"
    )


def test_a_root_not_in_the_trusted_root_is_refused(world: World, bundle_copy: Path) -> None:
    """A look-alike instance (its own Fulcio, CT log and Rekor keys, the same CA names) signs the same identity."""
    keyless(world, bundle_copy, instance=SigstoreInstance())
    assert refused(bundle_copy, world.policy, TransparencyLogError) == (
        "Sigstore verification against anchor 'sigstore' failed: the signing certificate (issued by "
        "'CN=fulcio-intermediate,O=Bank Example') does not chain to a certificate authority of the trusted root"
    )


# The policy: grants by model name, first matching rule decides, revocation.


def test_the_catch_all_does_not_widen_a_narrower_rule(world: World, bundle_copy: Path) -> None:
    """The platform key may sign any name rule 1 does not cover, and not `risk`, which rule 1 covers."""
    sign_folder(bundle_copy, world.platform_key, subject="risk")
    message = refused(bundle_copy, world.policy, SignerNotGrantedError)
    assert (
        message
        == "signer platform-2026 is not granted model 'risk': rule 1 (models: risk, fraud_*) decides, and it does not accept this signer"
    )
    rename(bundle_copy, "churn")
    sign_folder(bundle_copy, world.platform_key, subject="churn")
    assert verify(bundle_copy, world.policy).rule == "rule 2 (models: *)"


def test_a_trusted_signer_outside_its_grant_is_refused(world: World, bundle_copy: Path) -> None:
    """The release certificate signs risk (control above) but not a model only the catch-all covers."""
    sign_by_certificate(rename(bundle_copy, "churn"), world.leaf(), (world.intermediate,), subject="churn")
    assert "rule 2 (models: *) decides" in refused(bundle_copy, world.policy, SignerNotGrantedError)


def test_a_name_no_rule_covers_is_refused(world: World, bundle_copy: Path) -> None:
    narrow = world.root / "narrow.yaml"
    narrow.write_text("keyring: keyring.json\nrules:\n  - models: [risk]\n    signers: [{kid: platform-2026}]\n")
    sign_folder(bundle_copy, world.platform_key, subject="risk")
    assert verify(bundle_copy, narrow).rule == "rule 1 (models: risk)"
    sign_folder(rename(bundle_copy, "churn"), world.platform_key, subject="churn")
    assert refused(bundle_copy, narrow, SignerNotGrantedError) == f"no rule of the trust policy ({narrow}) covers model 'churn'"


def test_revoked_signers_are_refused(world: World, tmp_path: Path, packed_bundle: Path) -> None:
    """A kid, a leaf serial, the intermediate's fingerprint and a keyless identity, each revoked; unrevoked they pass above."""
    leaf = world.leaf()
    intermediate_fingerprint = world.intermediate.certificate.fingerprint(hashes.SHA256())
    cases = {
        "team-risk-2026": lambda folder: sign_folder(folder, world.team_key, subject="risk"),
        f"{leaf.certificate.serial_number:x}": lambda folder: sign_by_certificate(folder, leaf, (world.intermediate,)),
        f"sha256:{intermediate_fingerprint.hex()}": lambda folder: sign_by_certificate(folder, world.leaf(), (world.intermediate,)),
        WORKFLOW: lambda folder: keyless(world, folder),
    }
    for number, (entry, sign) in enumerate(cases.items()):
        folder = Path(shutil.copytree(packed_bundle, tmp_path / f"bundle-{number}"))
        sign(folder)
        verify(folder, world.policy)  # the live control: the same signature is accepted while not revoked
        revoking = world.policy_with(f'revoked: ["{entry}"]\n', f"revoking-{number}.yaml")
        assert f"is revoked by the trust policy ('{entry}')" in refused(folder, revoking, RevokedSignerError)


def test_a_chain_of_too_many_certificates_is_refused_unread(world: World, bundle_copy: Path) -> None:
    """Chain building costs a signature check per candidate: the pool is bounded before any is tried."""
    sign_by_certificate(bundle_copy, world.leaf(), (world.intermediate,) * 8)
    assert refused(bundle_copy, world.policy, SignatureFormatError) == "model.sig carries 9 certificates; at most 8 are read"
    sign_by_certificate(bundle_copy, world.leaf(), (world.intermediate,) * 7)
    assert verify(bundle_copy, world.policy).signer.method == "certificate"


def test_model_signing_verifies_a_sealserve_certificate_signature(world: World, bundle_copy: Path) -> None:
    """The other direction of interop: the OpenSSF library accepts what `sealserve sign --certificate` writes,
    and refuses it against a root it was not issued under."""
    sign_by_certificate(bundle_copy, world.leaf(), (world.intermediate,))
    model_verifying.Config().use_certificate_verifier(certificate_chain=[world.root / "corp-root.pem"]).verify(
        bundle_copy, bundle_copy / "model.sig"
    )
    stranger = world.root / "stranger-root.pem"
    stranger.write_bytes(make_ca("Stranger Root").pem())
    with pytest.raises(crypto.X509StoreContextError, match="unable to get local issuer certificate"):
        model_verifying.Config().use_certificate_verifier(certificate_chain=[stranger]).verify(bundle_copy, bundle_copy / "model.sig")
