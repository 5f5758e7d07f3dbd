"""What an admin action did on each worker process, and whether it took effect on all of them."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["pin", "unpin", "reload", "unload", "candidate", "abort"]


class Candidates(typing.Protocol):
    """Where a worker applies candidate actions (serve/rollout/): `candidate` None aborts the model's candidate."""

    def apply(self, key: str, candidate: dict[str, Any] | None, reason: str, by: str) -> tuple[bool, str | None]: ...

    def adopt(self, key: str, candidate: dict[str, Any] | None) -> None:
        """A worker that starts after candidate actions takes the last one on before its first load."""


@dataclass(frozen=True)
class WorkerReport:
    """One worker's answer to one action."""

    pid: int
    applied: bool  # the worker applied this action's generation (False: it did not answer in time)
    ok: bool  # the action itself succeeded there (a pin that could not load the version is not ok)
    version: str | None  # what the worker serves now
    pinned: str | None
    unloaded: bool
    error: str | None  # why the action failed, else the model's last load failure (an older version keeps serving)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "applied": self.applied,
            "ok": self.ok,
            "version": self.version,
            "pinned": self.pinned,
            "unloaded": self.unloaded,
            "error": self.error,
        }


@dataclass(frozen=True)
class Outcome:
    """Every live worker's answer to one action; `problems` says whether it took effect everywhere."""

    action: Action
    name: str
    version: str | None
    workers: list[WorkerReport]
    timeout: float

    @property
    def timed_out(self) -> bool:
        return any(not worker.applied for worker in self.workers)

    def problems(self, *, clean: bool = False) -> list[str]:
        """One line per worker where the action did not take effect; empty when it did on every worker.

        A pin must serve the pinned version everywhere; unload must leave every worker unloaded; the other
        actions must leave every worker serving one same version (a failed load keeps the older version
        serving, reported as `error`, as with one worker), and with `clean` no worker may report a failure.
        """
        lines = []
        for worker in self.workers:
            if not worker.applied:
                lines.append(f"worker {worker.pid}: did not apply it within {self.timeout:.0f}s")
            elif not worker.ok:
                lines.append(f"worker {worker.pid}: {worker.error or 'failed'}")
            elif self.action == "unload":
                if not worker.unloaded:
                    lines.append(f"worker {worker.pid}: still serving {worker.version}")
            elif self.action == "pin" and worker.version != self.version:
                lines.append(f"worker {worker.pid}: serves {worker.version or 'nothing'}")
            elif clean and worker.error:
                lines.append(f"worker {worker.pid}: {worker.error}")
        if not lines and self.action != "unload" and len({worker.version for worker in self.workers}) > 1:
            lines = [f"worker {worker.pid}: serves {worker.version or 'nothing'}" for worker in self.workers]
        return lines

    def status(self, failed: int) -> int:
        """504 when a worker did not answer in time, else the caller's status for a failed action."""
        return 504 if self.timed_out else failed

    def message(self, problems: list[str]) -> str:
        what = f"{self.action} {self.version}" if self.version else self.action
        return f"{self.name}: {what} did not take effect on every worker ({len(self.workers)} running): " + "; ".join(problems)

    def reports(self) -> list[dict[str, Any]]:
        return [worker.as_dict() for worker in self.workers]
