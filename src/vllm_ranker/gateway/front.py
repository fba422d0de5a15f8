"""The splicing front: the gateway's listening port when it speaks plain TCP to a plain-TCP backend.

Each SDK connection is spliced to its own backend connection (``Splice``): passthrough calls cost a copy, not a
gRPC server call plus a gRPC client call. When the backend cannot be reached, the connection is copied byte for
byte to the gateway's own gRPC server instead, which answers every call with Milvus's "service unavailable"
status naming the backend. One asyncio loop in one thread carries every connection; answers run in the gateway's
worker pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Executor

from .h2wire import ProtocolError
from .local_call import peer_of
from .proxy import GatewayHandler
from .splice import Splice

log = logging.getLogger(__name__)
_READ = 1 << 18
# A backend that drops connection attempts (a firewall, a host gone) would leave the SDK waiting for the kernel's
# ~2 minutes of SYN retries: past this, the connection goes to the gRPC server, which answers "unavailable".
CONNECT_TIMEOUT = 5.0
# After the backend closes a connection, the calls the front answers on it get this long to finish.
DRAIN_LIMIT = 30.0


class Front:
    def __init__(
        self,
        listen: tuple[str, int],
        backend: tuple[str, int],
        fallback_port: int,
        handler: GatewayHandler,
        pool: Executor,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.listen, self.backend, self.fallback_port = listen, backend, fallback_port
        self.connect_timeout = connect_timeout
        self.handler, self.pool = handler, pool
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._splices: set[Splice] = set()

    def start(self) -> int:
        """Listen (``OSError`` when the address cannot be bound) and serve in a thread; the port listened on."""
        host, port = self.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=512)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gateway-front", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(listener), self._loop).result()
        except BaseException:
            listener.close()
            self.stop(0)
            raise
        return int(listener.getsockname()[1])

    async def _open(self, listener: socket.socket) -> None:
        self._server = await asyncio.start_server(self._connection, sock=listener)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        splice: Splice | None = None
        backend_writer: asyncio.StreamWriter | None = None
        try:
            try:
                opening = asyncio.open_connection(*self.backend)
                backend_reader, to_backend = await asyncio.wait_for(opening, self.connect_timeout)
                assert self._loop is not None
                splice = Splice(self.handler, self.pool, self._loop, writer, to_backend)
                splice.peer = peer_of(writer.get_extra_info("peername"))
                self._splices.add(splice)
            except (OSError, TimeoutError):  # the backend is down: the gRPC server answers with a status naming it
                backend_reader, to_backend = await asyncio.open_connection("127.0.0.1", self.fallback_port)
            backend_writer = to_backend
            up = asyncio.create_task(self._pump(reader, to_backend, splice, by_backend=False))
            down = asyncio.create_task(self._pump(backend_reader, writer, splice, by_backend=True))
            try:
                done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
                if splice is not None and down in done and not up.done() and down.result():
                    await self._drain(splice, up)
            finally:
                for pump in (up, down):
                    pump.cancel()
                await asyncio.gather(up, down, return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if splice is not None:
                splice.close()
                self._splices.discard(splice)
            for end in (writer, backend_writer):
                if end is not None:
                    end.close()
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await end.wait_closed()
            self._connections.discard(task)

    @staticmethod
    async def _drain(splice: Splice, up: asyncio.Task[bool]) -> None:
        """The backend went: the calls the front answers finish before the SDK's connection closes."""
        splice.backend_gone()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_LIMIT
        while splice.busy and not up.done() and loop.time() < deadline:
            await asyncio.wait({up}, timeout=0.05)

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, splice: Splice | None, by_backend: bool
    ) -> bool:
        """Copy one direction until its end; True when it ended cleanly (the peer closed), False on an error."""
        feed: Callable[[bytes], None] | None = None
        if splice is not None:
            feed = splice.from_backend if by_backend else splice.from_client
        try:
            while data := await reader.read(_READ):
                if feed is None:
                    writer.write(data)
                else:
                    feed(data)
                await writer.drain()
            return True
        except ProtocolError as exc:
            assert splice is not None
            if splice.speaks_http2:
                splice.fail(exc, by_backend)
            else:
                log.info("closing a connection: %s", exc)
        except (OSError, ConnectionError):
            pass
        return False

    def stop(self, grace: float) -> None:
        """Take no new connection, let calls in flight end within ``grace`` seconds, then close every connection."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close(grace), loop).result()
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        loop.close()

    async def _close(self, grace: float) -> None:
        if self._server is not None:
            self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(splice.busy for splice in self._splices) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
