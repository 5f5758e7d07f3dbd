"""`sealserve push`, `pull`, `ls` and `promote`: a store's versions and aliases, with transfer progress on a terminal."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from sealserve.cli.output import err, out, run
from sealserve.errors import SealserveError


def push(bundle: Path, store_url: str) -> None:
    """Upload a bundle to a store; an existing version is never changed."""
    from sealserve.store import open_store

    def action() -> Any:
        store = open_store(store_url)
        with _progress(store):
            return store.push(bundle)

    info = run(action)
    out.print(f"pushed {info.name} {info.version} ({info.size} bytes) to {store_url}")


def pull(
    name: str,
    ref: str,
    store_url: str,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the bundle into (must not exist).")],
) -> None:
    """Download one version (REF is a version or an alias) as a bundle folder."""
    from sealserve.bundle import files
    from sealserve.store import open_store

    def action() -> str:
        store = open_store(store_url)
        version = store.resolve(name, ref)
        if out_dir.exists():
            raise SealserveError(f"{out_dir} already exists")
        staging = files.private_directory("sealserve-pull-")
        try:
            with _progress(store):
                store.fetch(name, version, staging)
            shutil.move(staging, out_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return version

    version = run(action)
    out.print(f"pulled {name} {version} into {out_dir}; run `sealserve verify` before trusting it")


def list_store(store_url: str, name: Annotated[str | None, typer.Argument()] = None) -> None:
    """List models, or one model's versions and aliases."""
    from sealserve.store import open_store

    store = run(lambda: open_store(store_url))
    if name is None:
        for model in run(store.models):
            out.print(model)
        return
    versions = run(lambda: store.versions(name))
    aliases = run(lambda: store.aliases(name))
    table = Table("version", "size", "signer", "created", "aliases")
    for info in versions:
        pointing = ", ".join(alias for alias, version in aliases.items() if version == info.version)
        table.add_row(info.version, f"{info.size:,}", info.signer, info.created, pointing)
    out.print(table)


def promote(name: str, version: str, alias: str, store_url: str) -> None:
    """Point an alias (production, staging, …) at a version."""
    from packaging.version import InvalidVersion, Version

    from sealserve.store import open_store

    def action() -> str | None:
        store = open_store(store_url)
        before = store.aliases(name).get(alias)
        store.promote(name, version, alias)
        return before

    before = run(action)
    out.print(f"{name}: {alias} → {version}")
    try:
        older = before is not None and Version(version) < Version(before)
    except InvalidVersion:
        older = False
    if older:
        err.print(
            f"[yellow]note[/yellow]: {alias} moved back from {before}; servers that served {before} refuse to follow it "
            f"(rollback protection). Pin {version} on them: `sealserve admin pin {name} {version}` or `ref: {version}` in the config.",
            highlight=False,
        )


@contextmanager
def _progress(store: Any) -> Iterator[None]:
    """A rich progress bar on stderr for stores that report transfers, only when stderr is a terminal."""
    if not err.is_terminal or not hasattr(store, "progress"):
        yield
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:

        def start(description: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(description, total=total)
            return lambda amount: bar.advance(task, amount)

        store.progress = start
        try:
            yield
        finally:
            store.progress = None
