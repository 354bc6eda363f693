"""A loopback TCP forwarder standing in for a Kubernetes Service in front of several replicas.

Each new connection goes to the next backend port (round robin) that accepts it; the bytes
are piped unchanged, so TLS ends at the replica, as behind a ClusterIP Service. A backend can
be taken out of rotation first (`drain`), as the endpoints controller does for a Pod that
is terminating, and put back (`restore`) once it serves again.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading

from tests.servers import free_port


class TcpService:
    def __init__(self, backends: list[int]) -> None:
        self.port = free_port()
        self._backends = list(backends)
        self._drained: set[int] = set()
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-service", daemon=True)
        self.connections = 0

    def __enter__(self) -> TcpService:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def drain(self, port: int) -> None:
        with self._lock:
            self._drained.add(port)

    def restore(self, port: int) -> None:
        with self._lock:
            self._drained.discard(port)

    def _candidates(self) -> list[int]:
        with self._lock:
            live = [p for p in self._backends if p not in self._drained]
        if not live:
            return []
        start = next(self._turn) % len(live)
        return live[start:] + live[:start]

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        for port in self._candidates():
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                continue
        if upstream is None:
            client.close()
            return
        self.connections += 1
        upstream.settimeout(None)
        pipes = [
            threading.Thread(target=_pipe, args=(client, upstream), daemon=True),
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True),
        ]
        for pipe in pipes:
            pipe.start()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        source.close()
