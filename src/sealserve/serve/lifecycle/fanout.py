"""Admin actions under `serve --workers N`: every worker process applies them, and the answer waits for all.

Each worker has its own registry, so an action (pin, unpin, reload, repository load or unload) used to
change only the worker that accepted the connection. With several workers, `sealserve serve` makes a
private runtime folder (0700) before it starts them and names it in SEALSERVE_WORKERS_DIR. In it:

- ``desired.json``: what the admins asked for, per model: the pin (or none), whether it is unloaded, the
  last action and its generation (a counter over all actions). Only the worker that received an action
  writes it, under an exclusive ``flock`` on ``admin.lock`` held for the whole action (so actions run one
  at a time), and atomically (temporary file + ``os.replace``): a reader never sees half a file.
- ``workers/<pid>.json``: one per worker, written atomically by that worker: the generation it has
  applied and, per model, what it serves and how its last action went. It exists while the worker runs.

Every worker's reload thread stats desired.json every `WATCH_INTERVAL` seconds, applies newer actions
with the registry methods a single-process server calls, then writes its file. The worker that received
the action waits (in a thread, never on the event loop; at most `APPLY_TIMEOUT` seconds) until every live
worker has applied that generation and answers with every worker's result. A worker that starts later
(uvicorn replaces one that died, or restarts them on SIGHUP) reads desired.json before its first load,
so pins and unloads outlive it; they end with the server, like a single-process pin.

Without SEALSERVE_WORKERS_DIR (one worker) none of this runs: admin actions call the registry directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sealserve.bundle.metadata import check_version
from sealserve.errors import ConfigError, SealserveError
from sealserve.serve.config import BundleSource
from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.outcome import Action, Candidates, Outcome, WorkerReport
from sealserve.serve.lifecycle.registry import ModelRegistry, ModelState
from sealserve.serve.settings import RUNTIME_ENV

logger = logging.getLogger("sealserve.fanout")

WATCH_INTERVAL = 0.2  # seconds between two stats of desired.json in each worker's reload thread
APPLY_TIMEOUT = 300.0  # a pin may download and verify a large bundle; the admin client waits 600 s
_ACK_POLL = 0.05


class WorkerSync:
    """The shared desired state of one multi-worker server, seen from one worker: applies it, and fans actions out."""

    def __init__(self, folder: Path, registry: ModelRegistry, *, timeout: float = APPLY_TIMEOUT) -> None:
        _check_private(folder)
        self.folder = folder
        self.registry = registry
        self.timeout = timeout
        self.pid = os.getpid()
        self.desired_path = folder / "desired.json"
        self.workers_dir = folder / "workers"
        self.workers_dir.mkdir(mode=0o700, exist_ok=True)
        self.ack_path = self.workers_dir / f"{self.pid}.json"
        self.applied: int | None = None  # the generation this worker has applied (None while starting)
        self._signature: tuple[int, int, int] | None = None
        self._results: dict[str, dict[str, Any]] = {}
        self._start = _start_time(self.pid)
        self.candidates: Candidates | None = None  # the rollout's side of the "candidate" and "abort" actions
        # Actions wait on the other workers: on a thread of their own, never the event loop or its shared executor.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sealserve-fanout")

    # -- the worker side, called from the reload thread --------------------------------------------------

    def join(self) -> None:
        """Register this worker (so actions from now on wait for it), then adopt the desired state before the first load."""
        self._write_ack()
        try:
            desired = self._read_desired()
        except SealserveError as exc:
            logger.error("worker %d starts without the admin state: %s", self.pid, exc)
            desired = {"generation": 0, "models": {}}
        for key, entry in desired["models"].items():
            state = self._state(key)
            if state is None:
                continue
            if isinstance(state.source, BundleSource):
                state.pinned = entry["pin"]
            if entry["unloaded"]:
                state.unloaded = state.attempted = True
            if "candidate" in entry and self.candidates is not None:
                self.candidates.adopt(state.key, entry["candidate"])
        self.applied = desired["generation"]
        if desired["generation"]:
            logger.info("worker %d adopts the admin state of generation %d", self.pid, desired["generation"])

    def acknowledge(self) -> None:
        """Report this worker's state after its first load (the end of its start-up)."""
        self._write_ack()

    def poll(self) -> list[ModelState]:
        """Apply actions newer than this worker's generation, if desired.json changed; return the states touched."""
        try:
            info = os.stat(self.desired_path)
        except FileNotFoundError:
            return []
        except OSError as exc:
            logger.warning("cannot read the shared admin state: %s", exc)
            return []
        if (info.st_ino, info.st_mtime_ns, info.st_size) == self._signature:
            return []  # os.replace gives every write a new inode: an unchanged signature is an unchanged file
        try:
            desired = self._read_desired()
        except SealserveError as exc:
            logger.error("%s", exc)
            return []
        applied = self.applied or 0
        touched = []
        pending = sorted(desired["models"].items(), key=lambda item: item[1]["generation"])
        for key, entry in pending:
            if entry["generation"] <= applied:
                continue
            state = self._state(key)
            if state is None:
                continue
            ok, message = self._apply(state, entry)
            self._results[state.key] = {"generation": entry["generation"], "ok": ok, "message": message}
            touched.append(state)
        if desired["generation"] > applied:
            self.applied = desired["generation"]
            self._write_ack()
        return touched

    def leave(self) -> None:
        """At shutdown: actions stop waiting for this worker."""
        with contextlib.suppress(OSError):
            self.ack_path.unlink()
        self._executor.shutdown(wait=False)

    def _apply(self, state: ModelState, entry: dict[str, Any]) -> tuple[bool, str | None]:
        """One action, with the same registry calls as a single-process server; never raises."""
        logger.info("worker %d applies %s of %s (generation %d)", self.pid, entry["action"], state.key, entry["generation"])
        try:
            if entry["action"] in ("candidate", "abort"):
                if self.candidates is None:
                    return False, "this worker has no rollout"
                return self.candidates.apply(state.key, entry.get("candidate"), entry.get("reason") or "", entry.get("by") or "admin")
            if entry["unloaded"]:
                self.registry.unload(state.key)
                return True, None
            if entry["action"] == "pin" and entry["pin"] is not None:
                try:
                    self.registry.pin(state.key, entry["pin"])
                except SealserveError as exc:
                    return False, str(exc)
                return True, None
            state.pinned = entry["pin"]  # unpin, reload or load: follow the shared pin (or the ref), load now
            self.registry.reload(state.key)
            return True, state.error
        except Exception as exc:  # the reload thread must survive whatever one action does
            logger.exception("worker %d: %s of %s failed", self.pid, entry["action"], state.key)
            return False, f"{type(exc).__name__} while applying {entry['action']}"

    def _state(self, key: str) -> ModelState | None:
        for state in self.registry.states:
            if state.key == key:
                return state
        logger.warning("the shared admin state names %r, which this worker's config does not have", key)
        return None

    def _write_ack(self) -> None:
        models = {}
        for state in self.registry.states:
            served = state.served
            models[state.key] = {
                "version": served.version if served is not None else None,
                "pinned": state.pinned,
                "unloaded": state.unloaded,
                "error": state.error,
                "result": self._results.get(state.key),
            }
        _write_json(self.ack_path, {"pid": self.pid, "start": self._start, "generation": self.applied, "models": models})

    # -- the side of the worker that received the action --------------------------------------------------

    async def apply(self, action: Action, name: str, version: str | None = None, extra: dict[str, Any] | None = None) -> Outcome:
        """`run`, off the event loop (actions run one at a time across the workers anyway)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.run, action, name, version, extra)

    def run(self, action: Action, name: str, version: str | None = None, extra: dict[str, Any] | None = None) -> Outcome:
        """Apply `action` on every worker (this one included, by its reload thread) and collect every answer.

        Blocking: call it in a thread. Unknown models raise UnknownModelError, bad pins SealserveError, before
        anything is written.
        """
        state = self.registry.state(name)
        if action == "pin":
            if not isinstance(state.source, BundleSource):
                raise ConfigError(f"{name} is a class model; it has no stored versions to pin")
            try:
                check_version(version or "")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        deadline = time.monotonic() + self.timeout
        with self._exclusive(deadline):
            desired = self._read_desired()
            generation = desired["generation"] + 1
            before = desired["models"].get(state.key) or {"pin": None, "unloaded": False}
            entry = {"pin": before["pin"], "unloaded": False, "action": action, "generation": generation}
            if "candidate" in before:  # a candidate action's result outlives the model's later actions (for new workers)
                entry["candidate"] = before["candidate"]
            if action in ("candidate", "abort"):  # the model's own state stays as it is
                entry |= {"unloaded": before["unloaded"], **(extra or {})}  # the candidate (None to abort), the reason, who
            if action == "pin":
                entry["pin"] = version
            elif action == "unpin":
                entry["pin"] = None
            elif action == "unload":
                entry["unloaded"] = True
            desired["generation"] = generation
            desired["models"][state.key] = entry
            _write_json(self.desired_path, desired)
            outcome = Outcome(action, state.key, version, self._wait(state.key, generation, deadline), self.timeout)
            if action in ("pin", "candidate") and not any(worker.ok for worker in outcome.workers):
                # No worker could serve it: keep the pin that is in force, so a worker started later does not try it.
                kept = {key: value for key, value in entry.items() if key != "candidate"} | {"pin": before["pin"]}
                desired["models"][state.key] = kept | ({"candidate": before["candidate"]} if "candidate" in before else {})
                _write_json(self.desired_path, desired)
        return outcome

    def _wait(self, key: str, generation: int, deadline: float) -> list[WorkerReport]:
        while True:
            acks = self._live_acks()
            if all(ack.get("generation") is not None and ack["generation"] >= generation for ack in acks) or time.monotonic() > deadline:
                return [_report(ack, key, generation) for ack in acks]
            time.sleep(_ACK_POLL)

    def _live_acks(self) -> list[dict[str, Any]]:
        """The files of the workers still running; those of dead workers are removed (a dead pid never answers)."""
        acks = []
        for path in sorted(self.workers_dir.glob("*.json")):
            try:
                ack = json.loads(path.read_bytes())
                pid = int(ack["pid"])
            except FileNotFoundError:
                continue  # the worker left between the listing and the read
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("ignoring unreadable worker file %s: %s", path.name, exc)
                continue
            if pid != self.pid and not worker_alive(pid, ack.get("start")):
                logger.info("worker %d is gone; no longer waiting for it", pid)
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            acks.append(ack)
        return acks

    @contextlib.contextmanager
    def _exclusive(self, deadline: float) -> Iterator[None]:
        """One action at a time across the workers: flock (per open file, so it also excludes threads of this process)."""
        fd = os.open(self.folder / "admin.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ServingError(503, "admin_busy", "another admin action is still running on the workers; try again") from None
                    time.sleep(_ACK_POLL)
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the lock

    def _read_desired(self) -> dict[str, Any]:
        """The desired state (empty before the first action); records the file's signature for `poll`.

        Raises SealserveError when it cannot be read: an action must never overwrite what it could not read.
        """
        try:
            with open(self.desired_path, "rb") as handle:
                info = os.fstat(handle.fileno())
                raw = handle.read()
        except FileNotFoundError:
            return {"generation": 0, "models": {}}
        except OSError as exc:
            raise SealserveError(f"cannot read the workers' shared admin state: {exc.strerror}") from None
        self._signature = (info.st_ino, info.st_mtime_ns, info.st_size)
        try:
            desired: dict[str, Any] = json.loads(raw)
            if not isinstance(desired.get("generation"), int) or not isinstance(desired.get("models"), dict):
                raise ValueError("unexpected shape")
            for entry in desired["models"].values():
                if not (
                    isinstance(entry.get("generation"), int)
                    and isinstance(entry.get("pin"), str | None)
                    and isinstance(entry.get("unloaded"), bool)
                    and entry.get("action") in ("pin", "unpin", "reload", "unload", "candidate", "abort")
                    and isinstance(entry.get("candidate"), dict | None)
                ):
                    raise ValueError(f"unexpected model entry {entry!r}")
        except (ValueError, AttributeError) as exc:
            raise SealserveError(f"the workers' shared admin state is unreadable: {exc}") from None
        return desired


def _report(ack: dict[str, Any], key: str, generation: int) -> WorkerReport:
    pid = int(ack["pid"])
    model = (ack.get("models") or {}).get(key) or {}
    applied = ack.get("generation") is not None and ack["generation"] >= generation
    result = model.get("result") or {}
    if result.get("generation") == generation:
        ok, error = bool(result.get("ok")), result.get("message")
    else:  # the worker started after the action and adopted it before its first load
        ok, error = applied, model.get("error")
    return WorkerReport(pid, applied, ok and applied, model.get("version"), model.get("pinned"), bool(model.get("unloaded")), error)


def _write_json(path: Path, content: dict[str, Any]) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(content).encode())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _check_private(folder: Path) -> None:
    """Whoever can write the runtime folder can pin any signed version: it must be ours and closed to others."""
    try:
        info = os.lstat(folder)
    except OSError as exc:
        raise ConfigError(f"{RUNTIME_ENV}={folder}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConfigError(f"{RUNTIME_ENV}={folder} must be a folder owned by this user with mode 0700")


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3… of /proc/PID/stat (state first), or None where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _start_time(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def worker_alive(pid: int, start: str | None = None) -> bool:
    """Running, not a zombie, and (where /proc tells) the same process that registered, not a reused pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    if fields is None:
        return True
    if fields[0] in ("Z", "X"):
        return False
    return start is None or len(fields) <= 19 or fields[19] == start
