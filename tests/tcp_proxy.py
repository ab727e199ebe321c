"""A TCP proxy for tests that can be frozen: it stops forwarding without closing a socket (a cut path)."""

from __future__ import annotations

import select
import socket
import threading


class FreezableProxy:
    """Forwards 127.0.0.1:<port> to `upstream`. `freeze()` stops every byte in both directions and leaves
    every connection open (what a frozen host or a silently dropped route looks like to its peers);
    `thaw()` resumes. New connections made while frozen are accepted but reach nothing until thawed."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, name="proxy-accept", daemon=True)]
        self._threads[0].start()

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        """The database host is down: every connection is reset and new ones are refused."""
        self.close()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        self._listener.close()
        for sock in list(self._sockets):
            try:
                sock.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> FreezableProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            thread = threading.Thread(target=self._connect, args=(client,), name="proxy-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _connect(self, client: socket.socket) -> None:
        self._wait_flowing()
        if self._closed.is_set():
            return
        try:
            server = socket.create_connection(self.upstream, timeout=30)  # a loaded CI machine can be slow to accept
        except OSError:
            client.close()
            return
        server.settimeout(None)
        self._sockets.append(server)
        back = threading.Thread(target=self._pump, args=(server, client), name="proxy-back", daemon=True)
        self._threads.append(back)
        back.start()
        self._pump(client, server)

    def _wait_flowing(self) -> None:
        while not self._flowing.wait(0.05) and not self._closed.is_set():
            pass

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        while not self._closed.is_set():
            self._wait_flowing()  # frozen: nothing is read, so nothing is acknowledged beyond the kernel buffers
            try:
                readable, _, _ = select.select([source], [], [], 0.05)
                if not readable:
                    continue
                data = source.recv(65536)
            except (OSError, ValueError):
                data = b""
            if not data:
                break
            self._wait_flowing()  # frozen mid-chunk: hold it, never drop or deliver it while frozen
            try:
                target.sendall(data)
            except OSError:
                break
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
