"""Admin actions on a model (reload, pin, unpin, load, unload): applied on this process with one worker, on every
worker with several; the admin API and the V2 repository API both call this one object."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sealserve.errors import SealserveError
from sealserve.serve.errors import ServingError
from sealserve.serve.lifecycle.fanout import WorkerSync
from sealserve.serve.lifecycle.outcome import Action, Outcome
from sealserve.serve.lifecycle.registry import ModelRegistry, ModelState


@dataclass(frozen=True)
class Applied:
    """The model's state after an action, and with several workers every worker's answer (None with one)."""

    state: ModelState
    outcome: Outcome | None


class AdminActions:
    def __init__(self, registry: ModelRegistry, sync: WorkerSync | None = None) -> None:
        self.registry, self.sync = registry, sync

    async def apply(self, action: Action, name: str, version: str | None = None) -> Applied:
        """Apply `action`; unknown models raise UnknownModelError first. A refused pin is a 409 (`pin_failed`);
        with several workers the outcome says where the action did not take effect (the caller decides the answer)."""
        self.registry.state(name)
        if self.sync is not None:
            try:
                outcome = await self.sync.apply(action, name, version)
            except ServingError:
                raise
            except SealserveError as exc:
                raise ServingError(409, f"{action}_failed", str(exc)) from None
            return Applied(self.registry.state(name), outcome)
        try:
            state = await asyncio.to_thread(self._apply_here, action, name, version)
        except SealserveError as exc:
            raise ServingError(409, f"{action}_failed", str(exc)) from None
        return Applied(state, None)

    def _apply_here(self, action: Action, name: str, version: str | None) -> ModelState:
        if action == "pin":
            return self.registry.pin(name, version or "")
        if action == "unpin":
            return self.registry.unpin(name)
        if action == "unload":
            return self.registry.unload(name)
        return self.registry.reload(name)
