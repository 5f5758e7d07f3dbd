"""A trial prediction in a child process before a bundle model goes live (docs/security.md, "Trial prediction").

After verification, a child forked from one warm process (multiprocessing's forkserver, started once per server with the
model libraries already imported; never a fork of the threaded server) loads the verified folder through the server's
own loader and predicts on records built from the bundle's statistics (trial_child.py). A child that dies by a signal,
exits non-zero, outgrows its memory limit or outlives its timeout fails the load: the model stays unready (or keeps
serving its last good version) and the server stays up. A child whose loader refuses the bundle (a policy refusal) lets
the server's own load raise that refusal with its own type.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing import forkserver
from pathlib import Path
from typing import TYPE_CHECKING

from sealserve.errors import TrialPredictionError

if TYPE_CHECKING:  # trial_child (imported when a trial runs) imports the runtime: the runner starts before this process does
    from sealserve.runtime.choice import RuntimeSetting

logger = logging.getLogger("sealserve.trial")

TAIL = 4096  # bytes of the child's stderr kept for the log
# Imported once by the trial runner, so each trial pays a fork instead of the model libraries' imports (trial_preload.py
# imports each on its own: one that cannot load does not take the runner down).
PRELOAD = ("sealserve.serve.lifecycle.trial_child", "sealserve.serve.lifecycle.trial_preload")


@dataclass(frozen=True)
class TrialResult:
    """A finished trial: `refused` holds the loader's refusal (the server's own load raises it), else the rows predicted."""

    seconds: float
    rows: int = 0
    peak_rss_kib: int | None = None
    refused: str | None = None
    raised: tuple[str, ...] = ()  # exception types of trial calls that raised (served as error answers, not crashes)

    @property
    def summary(self) -> str:
        text = f"{self.rows} rows, {self.seconds:.2f}s, child peak RSS {(self.peak_rss_kib or 0) / 1024:.0f} MiB"
        return text + (f"; {len(self.raised)} calls raised {', '.join(sorted(set(self.raised)))}" if self.raised else "")


class TrialRunner:
    """Forks trial children from the warm forkserver; `warm` starts it ahead of the first trial (in the background)."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(PRELOAD))
        self._children: set[multiprocessing.process.BaseProcess] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the trial runner and wait until its imports are done (it forks a child that does nothing)."""
        child = self._context.Process(target=os.getpid, daemon=True)
        child.start()
        child.join()

    def abandon(self) -> None:
        """The server will not start: end the runner now, without waiting for its imports (a runner still importing
        would keep the caller's stdout and stderr open until they finish)."""
        pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def cancel_running(self) -> None:
        """Kill the trials in progress (at shutdown): each fails its load, and nothing waits for a hanging model."""
        with self._lock:
            children = list(self._children)
        for child in children:
            _kill(child)

    def warm(self) -> None:
        """Start the trial runner's process now without waiting for its imports, which run beside this process's own
        (the server's imports, fetching and verifying); the first trial waits for them. Again once running: nothing."""
        forkserver.ensure_running()

    def run(
        self,
        folder: Path,
        *,
        runtime: RuntimeSetting,
        trusted_types: tuple[str, ...],
        allow_pickle: bool,
        timeout: float,
        memory: int,
    ) -> TrialResult:
        """Run one trial on a verified folder; raise TrialPredictionError when it crashes, fails or times out."""
        from sealserve.serve.lifecycle import trial_child

        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="sealserve-trial-") as scratch:
            out, err = Path(scratch, "out"), Path(scratch, "err")
            out.touch(0o600)
            err.touch(0o600)
            args = (folder, runtime, trusted_types, allow_pickle, memory, out, err)
            child = self._context.Process(target=trial_child.run, args=args, name=f"sealserve-trial-{folder.name}", daemon=True)
            with self._lock:
                try:
                    child.start()
                except OSError as exc:
                    raise TrialPredictionError(f"cannot start the trial prediction: {exc.strerror}") from None
                except (EOFError, ConnectionError):  # the forkserver is gone: the reason is in the log above
                    raise TrialPredictionError("cannot start the trial prediction: its runner process exited (see the log)") from None
                self._children.add(child)
            try:
                child.join(timeout)
            except BaseException:  # interrupted while waiting: never leave the child behind
                _kill(child)
                raise
            finally:
                with self._lock:
                    self._children.discard(child)
            if child.exitcode is None:
                _kill(child)
                _log_tail(folder, err)
                raise TrialPredictionError(f"the model did not finish its trial prediction within {timeout:g}s (killed)")
            return _result(folder, child.exitcode, out, err, time.perf_counter() - started)


def _result(folder: Path, status: int, out: Path, err: Path, seconds: float) -> TrialResult:
    from sealserve.serve.lifecycle.trial_child import FAILED, PASSED, REFUSED

    if status < 0:
        _log_tail(folder, err)
        raise TrialPredictionError(f"the model crashed in its trial prediction ({_signal_name(-status)})")
    if status == REFUSED:
        return TrialResult(seconds, refused=(_tail(err).strip().splitlines() or ["refused"])[-1])
    if status != PASSED:
        _log_tail(folder, err)
        last = _tail(err).strip().splitlines()
        reason = last[-1].removeprefix("trial failed: ") if status == FAILED and last else f"exit status {status}"
        raise TrialPredictionError(f"the model failed its trial prediction ({reason})")
    try:
        with out.open("rb") as stream:
            report = json.loads(stream.read(TAIL))
        return TrialResult(seconds, int(report["rows"]), int(report["peak_rss_kib"]), raised=tuple(map(str, report["raised"])))
    except (ValueError, KeyError, TypeError):
        raise TrialPredictionError("the trial prediction ended without its report") from None


def _kill(child: multiprocessing.process.BaseProcess) -> None:
    if child.pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)  # its own session (trial_child.run): whatever it started goes too
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)  # killed before it could start its session
    child.join()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(path: Path) -> str:
    with path.open("rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - TAIL))
        return stream.read(TAIL).decode(errors="replace")


def _log_tail(folder: Path, err: Path) -> None:
    from sealserve.serve.lifecycle.trial_child import MAX_OUTPUT

    with err.open("rb") as stream:  # at most MAX_OUTPUT bytes (the child's RLIMIT_FSIZE)
        lines = stream.read(MAX_OUTPUT).decode(errors="replace").strip().splitlines()
    tail = "\n".join(line for line in lines if not line.startswith("Extension modules:"))[-TAIL:]
    if tail:
        logger.warning("trial prediction of %s: the child's last output:\n%s", folder.name, tail)
