"""The identity attack suite's world: a private PKI, a private Sigstore instance, a keyring and the trust.yaml over them.

Rule 1 covers `risk` and `fraud_*` (the team's key, the release certificate, the CI workflow identity); rule 2 is a
catch-all for the platform key, so it must never widen rule 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from sealserve.bundle import keyring as keyring_module
from sealserve.bundle import keys
from sealserve.bundle.metadata import METADATA_FILE
from sealserve.packing.signing import Credential, sign_folder
from tests.support.pki import Issued, make_ca, make_leaf
from tests.support.sigstore_instance import SigstoreInstance

RELEASE = "release@bank.example"
WORKFLOW = "https://github.com/bank/models/.github/workflows/release.yml@refs/tags/v1.0.0"
GITHUB = "https://token.actions.githubusercontent.com"
POLICY = f"""
anchors:
  corp-ca: {{certificates: [corp-root.pem]}}
  sigstore: {{trusted_root: trusted_root.json}}
keyring: keyring.json
rules:
  - models: ["risk", "fraud_*"]
    signers:
      - {{kid: team-risk-2026}}
      - {{certificate: {{anchor: corp-ca, san: "{RELEASE}"}}}}
      - {{sigstore: {{anchor: sigstore, issuer: "{GITHUB}",
                     identity_regex: "^https://github.com/bank/models/\\\\.github/workflows/release\\\\.yml@refs/tags/.*$"}}}}
  - models: ["*"]
    signers: [{{kid: platform-2026}}]
"""


@dataclass(frozen=True)
class World:
    root: Path
    corp_root: Issued
    intermediate: Issued
    team_key: keys.SigningKey
    platform_key: keys.SigningKey
    sigstore: SigstoreInstance

    @property
    def policy(self) -> Path:
        return self.root / "trust.yaml"

    def policy_with(self, extra: str, name: str = "trust-variant.yaml") -> Path:
        """The policy plus `extra` YAML (e.g. a revoked: list), beside the same anchors."""
        path = self.root / name
        path.write_text(POLICY + extra)
        return path

    def leaf(self, **options: object) -> Issued:
        return make_leaf(self.intermediate, emails=options.pop("emails", (RELEASE,)), **options)  # type: ignore[arg-type]

    def chain_files(self, leaf: Issued) -> tuple[Path, Path, Path]:
        """The leaf's certificate, its key and the intermediate, as the PEM files the CLIs take."""
        certificate, key = leaf.write(self.root / "issued", f"leaf-{leaf.certificate.serial_number:x}")
        return certificate, key, self.root / "intermediate.pem"


def build_world(root: Path) -> World:
    corp_root = make_ca("Bank Root CA")
    intermediate = make_ca("Bank Release CA", corp_root)
    (root / "corp-root.pem").write_bytes(corp_root.pem())
    (root / "intermediate.pem").write_bytes(intermediate.pem())
    team, platform = keys.generate(keys.Algorithm.ECDSA_P256, "team-risk-2026"), keys.generate(keys.Algorithm.ED25519, "platform-2026")
    ring = keyring_module.Keyring().add(keyring_module.entry_for(team)).add(keyring_module.entry_for(platform))
    ring.save(root / "keyring.json")
    instance = SigstoreInstance()
    instance.write_trusted_root(root / "trusted_root.json")
    (root / "trust.yaml").write_text(POLICY)
    return World(root, corp_root, intermediate, team, platform, instance)


def sign_by_certificate(folder: Path, leaf: Issued, chain: tuple[Issued, ...], subject: str = "risk") -> Path:
    """What `sealserve sign --certificate` writes: the leaf, then the chain, in the bundle's verification material."""
    key = keys.SigningKey("", keys.Algorithm.ECDSA_P256, private_key=leaf.key)
    der = tuple(cert.certificate.public_bytes(serialization.Encoding.DER) for cert in (leaf, *chain))
    sign_folder(folder, Credential(key, der), subject=subject)
    return folder


def rename(folder: Path, name: str) -> Path:
    """Change the signed name in the metadata (the caller signs the folder afterwards)."""
    metadata = json.loads((folder / METADATA_FILE).read_text())
    metadata["name"] = name
    (folder / METADATA_FILE).write_text(json.dumps(metadata))
    return folder
