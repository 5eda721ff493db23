"""Uvicorn on a pre-bound socket, with the interface of the stdlib servers it replaced."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn

from services.ingest.http_limits import redact_uvicorn_logs


class IngestServer:
    """Uvicorn on a socket bound at construction (so ``port=0`` gets a free
    port, in ``server_address``), with the interface of the stdlib servers
    it replaced: ``serve_forever``, ``shutdown`` (finishes the requests in
    flight, returns when serving stopped), ``server_close``."""

    def __init__(self, asgi: Any, host: str, port: int) -> None:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        self.socket = socket.socket(family, kind, proto)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(address)
        self.socket.listen(128)
        self.server_address: tuple[Any, ...] = self.socket.getsockname()
        config = uvicorn.Config(
            asgi,
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="off",
            http="h11",
            timeout_keep_alive=5,
            timeout_graceful_shutdown=10,
        )
        self._server = uvicorn.Server(config)
        self._stopped = threading.Event()
        redact_uvicorn_logs()

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until :meth:`shutdown` (``poll_interval`` is not used)."""
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self._server.should_exit = True
        self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()


__all__ = ["IngestServer"]
