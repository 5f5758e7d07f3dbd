"""`sealserve pack` and `sealserve verify`: build and sign a bundle, and check one offline as the server would."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Annotated, Any

import typer

from sealserve.bundle import keyring as keyring_module
from sealserve.bundle.metadata import METADATA_FILE, BundleMetadata, ModelFormat
from sealserve.cli.keys import PrivateKeyOption
from sealserve.cli.output import fail, out, run
from sealserve.errors import BundleFormatError

CertificateOption = Annotated[
    Path | None, typer.Option("--certificate", help="Sign by certificate: the PEM certificate of --private-key (model_signing's layout).")
]
ChainOption = Annotated[
    list[Path] | None, typer.Option("--chain", help="PEM intermediates from --certificate towards its root; repeatable.")
]


def pack(
    model_file: Annotated[
        Path, typer.Argument(help="Fitted model: .skops, .onnx, XGBoost .json, LightGBM .txt, or .joblib/.pkl with --allow-pickle.")
    ],
    name: Annotated[str, typer.Option("--name")],
    version: Annotated[str, typer.Option("--version")],
    private_key: PrivateKeyOption,
    out_path: Annotated[Path, typer.Option("--out", help="Bundle folder, or a .zip archive.")],
    model_format: Annotated[
        ModelFormat | None, typer.Option("--format", help="Model file format in the bundle; default: skops (onnx for an .onnx file).")
    ] = None,
    sample: Annotated[
        Path | None, typer.Option("--sample", help="CSV of training features (derives the schema and drift statistics).")
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", help="Column of --sample to drop (the label); repeatable: a multi-output model's targets, in order."),
    ] = None,
    report: Annotated[list[Path] | None, typer.Option("--report", help="Report file to include; repeatable.")] = None,
    features: Annotated[Path | None, typer.Option("--features", help="JSON file of per-feature overrides.")] = None,
    class_label: Annotated[list[str] | None, typer.Option("--class-label", help="VALUE=LABEL; repeatable.")] = None,
    description: Annotated[str, typer.Option("--description")] = "",
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="Allow the pickle-based joblib format.")] = False,
    trust: Annotated[
        list[str] | None, typer.Option("--trust", help="Extra skops type the model needs (module.Name), after review; repeatable.")
    ] = None,
    no_compile: Annotated[bool, typer.Option("--no-compile", help="Do not try to add a compiled (ONNX) form.")] = False,
    compile_timeout: Annotated[
        float, typer.Option("--compile-timeout", help="Seconds the compile attempt may take before it is abandoned.", min=0.001)
    ] = 10.0,
    certificate: CertificateOption = None,
    chain: ChainOption = None,
) -> None:
    """Build and sign a bundle from a model file."""
    from sealserve.packing.build import pack as pack_bundle

    def action() -> Path:
        frame = _read_sample(sample, target or []) if sample else None
        if target and sample is None:
            raise BundleFormatError("--target names a column of --sample; pass --sample too")
        overrides = _read_overrides(features) if features else None
        labels = dict(_parse_label(item) for item in class_label or [])
        return pack_bundle(
            model_file,
            name=name,
            version=version,
            private_key=private_key,
            out=out_path,
            sample=frame,
            format=model_format,
            features=overrides,
            class_labels=labels,
            targets=target or (),
            reports=report or [],
            description=description,
            allow_pickle=allow_pickle,
            trust=trust or (),
            compiled=not no_compile,
            compile_timeout=compile_timeout,
            certificate=certificate,
            chain=chain or (),
        )

    result = run(action)
    out.print(f"bundle {name} {version} written to {result}")
    skipped = _compiled_skipped(result)
    if skipped:
        out.print(f"compiled form skipped: {skipped}", highlight=False, markup=False)


def verify(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder or .zip.")],
    keyring: Annotated[Path | None, typer.Option("--keyring", help="Keyring JSON file: every key may sign every model.")] = None,
    trust_policy: Annotated[
        Path | None, typer.Option("--trust-policy", help="trust.yaml: which keys, certificates and Sigstore identities sign which models.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Require this signed name.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Require this signed version.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result and its provenance as JSON.")] = False,
) -> None:
    """Verify a bundle offline, with the same code the server runs."""
    from sealserve.trust.identity.policy import TrustPolicy
    from sealserve.trust.verify import verify_bundle

    if (keyring is None) == (trust_policy is None):
        fail("error (usage): give --keyring or --trust-policy (a trust policy names its own keyring). See 'sealserve verify --help'.")

    def trust() -> keyring_module.Keyring | TrustPolicy:
        return TrustPolicy.load(trust_policy) if trust_policy is not None else keyring_module.Keyring.load(Path(str(keyring)))

    verified = run(lambda: verify_bundle(bundle, trust(), name=name, version=version))
    verified.discard()
    meta = verified.metadata
    if as_json:
        document = {"verified": True, "name": meta.name, "version": meta.version, "format": meta.format.value}
        out.print_json(data={**document, "provenance": verified.provenance.describe()})
        return
    signer = verified.signer
    issuer = f" (issuer {signer.issuer})" if signer.issuer else ""
    out.print(
        f"verified {meta.name} {meta.version} ({meta.format.value}), signer {signer.label}{issuer}, digest sha256:{verified.digest}",
        highlight=False,
        markup=False,
    )
    if verified.rule:
        out.print(f"admitted by {verified.rule}", highlight=False, markup=False)


def sign(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (signed in place) or .zip (replaced atomically).")],
    private_key: PrivateKeyOption,
    certificate: CertificateOption = None,
    chain: ChainOption = None,
) -> None:
    """(Re)sign an existing bundle with a key, or with a certificate and its chain."""
    from sealserve.packing.signing import load_credential, resign

    name = run(lambda: resign(bundle, load_credential(private_key, certificate, chain or ())))
    how = f"certificate {certificate}" if certificate is not None else f"key {private_key}"
    out.print(f"bundle {name} at {bundle} signed with {how}", highlight=False, markup=False)


def _compiled_skipped(bundle: Path) -> str | None:
    """Why the written bundle has no compiled form (from its own metadata), or None."""
    if bundle.suffix == ".zip":
        with zipfile.ZipFile(bundle) as archive:
            text = archive.read(METADATA_FILE).decode()
    else:
        text = (bundle / METADATA_FILE).read_text()
    return BundleMetadata.model_validate_json(text).compiled_skipped


def _read_sample(path: Path, targets: list[str]) -> Any:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise BundleFormatError(f"sample file {path} does not exist") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise BundleFormatError(f"sample file {path} is not a readable CSV: {exc}") from None
    for target in targets:
        if target not in frame.columns:
            raise BundleFormatError(f"--target {target!r} is not a column of {path}; its columns are {', '.join(map(str, frame.columns))}")
    return frame.drop(columns=targets)


def _read_overrides(path: Path) -> dict[str, Any]:
    try:
        overrides = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleFormatError(f"features file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleFormatError(f"features file {path} is not valid JSON: {exc}") from None
    if not isinstance(overrides, dict) or not all(isinstance(spec, dict) for spec in overrides.values()):
        raise BundleFormatError(f'features file {path} must be an object of per-feature objects, e.g. {{"age": {{"kind": "integer"}}}}')
    return overrides


def _parse_label(item: str) -> tuple[Any, str]:
    value, separator, label = item.partition("=")
    if not separator:
        raise typer.BadParameter(f"--class-label takes VALUE=LABEL, got {item!r}")
    try:
        return json.loads(value), label
    except json.JSONDecodeError:
        return value, label
