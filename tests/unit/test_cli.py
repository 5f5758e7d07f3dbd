"""Key and store commands (in-process): private keys stay private, errors are one line with exit status 1."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner, Result

from sealserve.bundle import keys
from sealserve.bundle.keyring import Keyring, KeyStatus
from sealserve.cli.main import app


def sealserve(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def test_keygen_writes_an_owner_only_key_and_only_public_material_to_the_keyring(tmp_path: Path) -> None:
    result = sealserve("keygen", "--private-key", tmp_path / "k.pem", "--keyring", tmp_path / "ring.json", "--kid", "alice")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600
    private = keys.read_private_key(tmp_path / "k.pem")
    ring_text = (tmp_path / "ring.json").read_text()
    assert "PRIVATE" not in ring_text
    pem_lines = (tmp_path / "k.pem").read_text().split("-----BEGIN PRIVATE KEY-----")[1].split("-----END")[0].split()
    assert all(line not in ring_text for line in pem_lines)
    [entry] = Keyring.load(tmp_path / "ring.json").keys
    assert (entry.kid, entry.alg, entry.status) == ("alice", "ES256", KeyStatus.ACTIVE)
    assert entry.fingerprint() == private.hint


def test_keygen_hmac_keeps_the_secret_out_of_the_keyring(tmp_path: Path) -> None:
    result = sealserve(
        "keygen", "--private-key", tmp_path / "team.pem", "--keyring", tmp_path / "ring.json", "--algorithm", "hmac-sha256", "--kid", "team"
    )
    assert result.exit_code == 0, result.output
    secret = keys.read_private_key(tmp_path / "team.pem").secret
    assert secret is not None
    ring = json.loads((tmp_path / "ring.json").read_text())
    assert ring["keys"][0]["secret_file"] == str((tmp_path / "team.pem").resolve())
    assert secret.hex() not in json.dumps(ring)
    assert Keyring.load(tmp_path / "ring.json").keys[0].secret() == secret


def test_keygen_never_overwrites_a_key_and_leaves_the_keyring_alone(tmp_path: Path) -> None:
    ring = tmp_path / "ring.json"
    assert sealserve("keygen", "--private-key", tmp_path / "k.pem", "--keyring", ring, "--kid", "first").exit_code == 0
    key_before, ring_before = (tmp_path / "k.pem").read_bytes(), ring.read_bytes()
    result = sealserve("keygen", "--private-key", tmp_path / "k.pem", "--keyring", ring, "--kid", "second")
    assert result.exit_code == 1
    assert "refusing to overwrite a key" in result.stderr
    assert ((tmp_path / "k.pem").read_bytes(), ring.read_bytes()) == (key_before, ring_before)


def test_keygen_with_a_taken_kid_writes_no_key_file(tmp_path: Path) -> None:
    ring = tmp_path / "ring.json"
    assert sealserve("keygen", "--private-key", tmp_path / "a.pem", "--keyring", ring, "--kid", "same").exit_code == 0
    result = sealserve("keygen", "--private-key", tmp_path / "b.pem", "--keyring", ring, "--kid", "same")
    assert result.exit_code == 1
    assert "error (KeyringError): key 'same' is already in the keyring" in result.stderr
    assert not (tmp_path / "b.pem").exists()


def test_rotate_then_revoke(tmp_path: Path) -> None:
    ring = tmp_path / "ring.json"
    assert sealserve("keygen", "--private-key", tmp_path / "old.pem", "--keyring", ring, "--kid", "old").exit_code == 0
    assert sealserve("keys", "rotate", "--private-key", tmp_path / "new.pem", "--keyring", ring, "--kid", "new").exit_code == 0
    assert [(e.kid, e.status) for e in Keyring.load(ring).keys] == [("old", KeyStatus.RETIRING), ("new", KeyStatus.ACTIVE)]
    assert sealserve("keys", "revoke", "old", "--keyring", ring).exit_code == 0
    assert [(e.kid, e.status) for e in Keyring.load(ring).keys] == [("old", KeyStatus.REVOKED), ("new", KeyStatus.ACTIVE)]
    listed = sealserve("keys", "list", "--keyring", ring).stdout
    assert "revoked" in listed
    assert "active" in listed
    missing = sealserve("keys", "revoke", "nobody", "--keyring", ring)
    assert missing.exit_code == 1
    assert "no key 'nobody'" in missing.stderr


def test_keys_add_trusts_an_outside_public_key_as_retiring_by_default(tmp_path: Path) -> None:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "pub.pem").write_bytes(public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    result = sealserve("keys", "add", "--public-key", tmp_path / "pub.pem", "--keyring", tmp_path / "ring.json")
    assert result.exit_code == 0, result.output
    [entry] = Keyring.load(tmp_path / "ring.json").keys
    assert (entry.kid, entry.status) == (keys.default_kid(public), KeyStatus.RETIRING)
    missing = sealserve("keys", "add", "--public-key", tmp_path / "absent.pem", "--keyring", tmp_path / "ring.json")
    assert missing.exit_code == 1
    assert "cannot read public key" in missing.stderr


def test_errors_are_one_unwrapped_line_naming_the_path(tmp_path: Path) -> None:
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "bundle.zip"
    result = sealserve("verify", deep, "--keyring", tmp_path / "ring.json")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert str(tmp_path / "ring.json") in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ls", "ftp://example.com/store"), "unsupported store URL scheme"),
        (("promote", "risk", "1.0.0", "1.0.0", "STORE"), "looks like a version"),
        (("pull", "risk", "production", "STORE", "--out", "OUT"), "risk: no version or alias 'production'"),
    ],
)
def test_store_commands_report_failures_as_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "store").mkdir()
    values = [str(tmp_path / "store") if a == "STORE" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = sealserve(*values)
    assert result.exit_code == 1
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_push_promote_ls_and_pull_round_trip(packed_bundle: Path, trusted_keyring: Keyring, tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    pushed = sealserve("push", packed_bundle, store)
    assert pushed.exit_code == 0, pushed.output
    assert "pushed risk 1.0.0" in pushed.stdout
    assert sealserve("promote", "risk", "1.0.0", "production", store).exit_code == 0
    assert sealserve("ls", store).stdout.split() == ["risk"]
    row = next(line for line in sealserve("ls", store, "risk").stdout.splitlines() if "1.0.0" in line)
    assert "test-signer" in row
    assert "production" in row
    pulled = sealserve("pull", "risk", "production", store, "--out", tmp_path / "pulled")
    assert pulled.exit_code == 0, pulled.output
    assert "pulled risk 1.0.0" in pulled.stdout
    (tmp_path / "ring.json").write_text(trusted_keyring.model_dump_json(exclude_none=True))
    verified = sealserve("verify", tmp_path / "pulled", "--keyring", tmp_path / "ring.json", "--name", "risk", "--version", "1.0.0")
    assert verified.exit_code == 0, verified.output
    assert "verified risk 1.0.0 (skops), signer test-signer" in verified.stdout
    again = sealserve("pull", "risk", "production", store, "--out", tmp_path / "pulled")
    assert again.exit_code == 1
    assert "already exists" in again.stderr


def typed(*args: str, stdin: str | None = None) -> Result:
    """The command as a user types it (program name `sealserve`), without pytest's exception passthrough."""
    return CliRunner().invoke(app, list(args), input=stdin, prog_name="sealserve")


def every_command(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from every_command(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = sorted(every_command(typer.main.get_command(app)))


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(path) for path, _ in COMMANDS])
def test_every_usage_error_is_one_line_naming_the_help_with_exit_status_1(path: tuple[str, ...], command: Any) -> None:
    unknown = typed(*path, "--qqqq")
    assert (unknown.exit_code, unknown.stdout) == (1, "")
    assert unknown.stderr == f"error (usage): No such option: --qqqq. See 'sealserve {' '.join(path)} --help'.\n"
    if any(param.required for param in command.params):
        missing = typed(*path)
        assert (missing.exit_code, missing.stdout) == (1, "")
        assert missing.stderr.startswith("error (usage): Missing ")
        assert missing.stderr.endswith(f"See 'sealserve {' '.join(path)} --help'.\n")
        assert missing.stderr.count("\n") == 1


def test_a_bad_value_and_an_unknown_command_are_one_line_and_no_arguments_show_the_help() -> None:
    wrong = typed("serve", "service.yaml", "--workers", "many")
    assert wrong.exit_code == 1
    assert wrong.stderr.startswith("error (usage): Invalid value for '--workers': ")
    assert wrong.stderr.count("\n") == 1
    unknown = typed("frobnicate")
    assert (unknown.exit_code, unknown.stderr) == (1, "error (usage): No such command 'frobnicate'. See 'sealserve --help'.\n")
    bare = typed()
    assert bare.exit_code == 0
    assert "Usage: sealserve" in bare.stdout


def test_a_short_password_is_one_line_and_exit_status_1() -> None:
    result = typed("auth", "hash-password", "--username", "bob", "--scope", "read", stdin="short\n")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("error (usage): Invalid value: use a password of at least 8 characters. See 'sealserve auth")


def test_the_sealserve_script_is_not_run_again_in_the_children_it_starts(tmp_path: Path) -> None:
    """Trial children and spawned workers would each re-run a main script (importing the whole CLI); the `sealserve`
    script declares itself `python -m sealserve`, which multiprocessing leaves alone."""
    import subprocess
    import sys

    runs = tmp_path / "runs.txt"
    script = tmp_path / "sealserve"
    script.write_text(
        "import multiprocessing, os\n"
        "from sealserve.cli.main import main, _as_package_main\n"
        f"open({str(runs)!r}, 'a').write(__name__ + '\\n')\n"
        "if __name__ == '__main__':\n"
        "    if os.environ.get('DECLARE') == '1':\n"
        "        _as_package_main()\n"
        "    child = multiprocessing.get_context('spawn').Process(target=os.getpid)\n"
        "    child.start()\n"
        "    child.join()\n"
    )
    for declare, expected in (("0", ["__main__", "__mp_main__"]), ("1", ["__main__"])):  # without it: the positive control
        runs.unlink(missing_ok=True)
        subprocess.run([sys.executable, str(script)], env={**os.environ, "DECLARE": declare}, check=True, timeout=60)
        assert runs.read_text().split() == expected
    assert subprocess.run([sys.executable, "-m", "sealserve", "--help"], capture_output=True, timeout=60).returncode == 0
