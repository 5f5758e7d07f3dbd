"""With `serve --workers N`, each worker's comparisons in a file of the workers' private folder, so any worker's
JSON view (and the agreement gauge it sets) adds every worker's up, as /metrics adds their series.

A worker writes `rollout/<pid>.json` atomically at most every `INTERVAL` seconds while it compares, before it
answers a view, and when it applies a candidate action (before it acknowledges it, so once an admin call returns no
worker's file still holds the candidate it replaced); a file whose process is gone is ignored and removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sealserve.serve.lifecycle.fanout import worker_alive

logger = logging.getLogger("sealserve.rollout")

INTERVAL = 0.5


class SharedComparisons:
    def __init__(self, folder: Path, collect: Callable[[], dict[str, Any]]) -> None:
        self.folder = folder / "rollout"
        self.folder.mkdir(mode=0o700, exist_ok=True)
        self.path = self.folder / f"{os.getpid()}.json"
        self._collect = collect  # this worker's exports by model: {"version": …, "export": …}
        self._stop = threading.Event()
        self._last = b""
        self._writing = threading.Lock()  # a periodic write must not replace a newer one with what it read before
        self._thread = threading.Thread(target=self._run, name="sealserve-rollout-share", daemon=True)
        self._thread.start()

    def write(self, *, always: bool = True) -> None:
        """Write this worker's file (the periodic write, `always` false, skips a content already written)."""
        with self._writing:
            content = json.dumps({"pid": os.getpid(), "models": self._collect()}).encode()
            if not always and content == self._last:
                return
            self._last = content
            self._replace(content)

    def _replace(self, content: bytes) -> None:
        fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".share.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.replace(temporary, self.path)
        except OSError as exc:
            logger.warning("cannot share this worker's comparisons: %s", exc)
            with contextlib.suppress(OSError):
                os.unlink(temporary)

    def read(self, key: str, version: str) -> list[dict[str, Any]]:
        """Every live worker's export of `key`'s candidate at `version` (this worker's included, written first)."""
        self.write()
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                shared = json.loads(path.read_bytes())
                pid = int(shared["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not worker_alive(pid):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            entry = shared["models"].get(key)
            if isinstance(entry, dict) and entry.get("version") == version:
                found.append(entry["export"])
        return found

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            self.write(always=False)
