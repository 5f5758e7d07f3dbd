"""uvicorn's worker supervisor, with workers that drain (shutdown.py) and a parent that waits for them within the bound.

uvicorn's supervisor forwards SIGTERM and SIGINT to every worker, which is what lets each one drain; here its workers
run DrainingServer, the parent closes its copy of the listening socket once the workers are told (so the port refuses
connections as soon as the last worker stops accepting), and a worker still running past drain_seconds + timeout is
killed rather than waited for. uvicorn's SIGHUP and SIGTTIN would start plain workers: they are refused.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.server import Server
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from sealserve.trust.policy.catalog import untracked_at_exit

if TYPE_CHECKING:
    from sealserve.serve.config import Shutdown

logger = logging.getLogger("sealserve.workers")
JOIN_MARGIN = 5.0  # seconds past a worker's own bound before the parent kills it


class DrainingWorker(Process):
    """One worker process whose server drains on SIGTERM."""

    def __init__(self, config: Config, sockets: list[socket.socket], settings: Shutdown) -> None:
        self.settings = settings.model_dump()  # plain numbers: unpickling them in the worker imports nothing
        super().__init__(config, sockets)

    def target(self, sockets: list[socket.socket] | None = None) -> None:
        """The worker's whole run; what is left after it is frozen, as after the CLI's."""
        try:
            super().target(sockets)
        finally:
            untracked_at_exit()

    @property
    def server(self) -> Server:
        """Built in the worker, its modules imported there: until the worker's health-check thread runs (uvicorn
        starts it before the server), the parent takes a slow import for a hung worker."""
        from sealserve.serve.config import Shutdown
        from sealserve.serve.shutdown import DrainingServer

        if self._server is None:
            self._server = DrainingServer(self.config, Shutdown(**self.settings))
        return self._server


class DrainingWorkers(Multiprocess):
    def __init__(self, config: Config, sockets: list[socket.socket], settings: Shutdown) -> None:
        super().__init__(config, sockets)
        self.settings = settings

    def _started(self) -> DrainingWorker:
        process = DrainingWorker(self.config, self.sockets, self.settings)
        process.start()
        return process

    def init_processes(self) -> None:
        self.processes.extend(self._started() for _ in range(self.processes_num))

    def keep_subprocess_alive(self) -> None:
        """uvicorn's: a worker that died or stopped answering is replaced, unless it never started."""
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logger.error("worker [%s] failed to start; stopping", process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info("worker [%s] died; starting another", process.pid)
            self.processes[index] = self._started()

    def terminate_all(self) -> None:
        super().terminate_all()
        for listener in self.sockets:
            listener.close()  # the workers' copies keep accepting through their drain; the port closes with the last

    def join_all(self) -> None:
        deadline = time.monotonic() + self.settings.drain_seconds + self.settings.timeout + JOIN_MARGIN
        for process in self.processes:
            process.process.join(max(deadline - time.monotonic(), 0.0))
            if process.exitcode is None:
                logger.error("worker [%s] still running past the shutdown timeout; killing it", process.pid)
                process.kill()
            process.join()

    def restart_all(self) -> None:
        logger.warning("restarting workers in place is not supported; restart the server")

    def handle_ttin(self) -> None:
        logger.warning("adding workers to a running server is not supported; restart it with --workers")
