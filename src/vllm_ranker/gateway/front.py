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

from .proxy import GatewayHandler
from .splice import ProtocolError, Splice

log = logging.getLogger(__name__)
_READ = 1 << 18


class Front:
    def __init__(
        self,
        listen: tuple[str, int],
        backend: tuple[str, int],
        fallback_port: int,
        handler: GatewayHandler,
        pool: Executor,
    ) -> None:
        self.listen, self.backend, self.fallback_port = listen, backend, fallback_port
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
                backend_reader, backend_writer = await asyncio.open_connection(*self.backend)
                assert self._loop is not None
                splice = Splice(self.handler, self.pool, self._loop, writer, backend_writer)
                self._splices.add(splice)
            except OSError:  # the backend is down: the gRPC server answers with a status naming it
                backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", self.fallback_port)
            pumps = {
                asyncio.create_task(self._pump(reader, backend_writer, splice.from_client if splice else None)),
                asyncio.create_task(self._pump(backend_reader, writer, splice.from_backend if splice else None)),
            }
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
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
    async def _pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, feed: Callable[[bytes], None] | None
    ) -> None:
        try:
            while data := await reader.read(_READ):
                if feed is None:
                    writer.write(data)
                else:
                    feed(data)
                await writer.drain()
        except ProtocolError as exc:
            log.info("closing a connection: %s", exc)
        except (OSError, ConnectionError):
            pass

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
