"""A loopback TCP forwarder: the rerank port answered by the embedder's vLLM (standard library only).

When ``serve`` runs one model for both jobs (``--rerank-model same``, or no cross-encoder can be had), the
reranker's port still has to answer, so clients configured with two endpoints (embeddings on 8000, rerank on 8001)
work unchanged. A second vLLM of the same model would cost another ~1 GB and another minute of start-up; this
process costs a few MB. It copies bytes both ways (HTTP/1.1 keep-alive and all) and exits when the process it
serves for (``--watch-pid``) is gone, or on SIGTERM.

    python _port_forwarder.py --listen 127.0.0.1:8001 --target 127.0.0.1:8000 --watch-pid 1234
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


async def _handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, host: str, port: int) -> None:
    try:
        server_r, server_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()  # the target is not up (yet): a refused connection, as from a server still starting
        return
    try:
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))
    finally:
        for w in (client_w, server_w):
            w.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is gone too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def serve(listen: str, target: str, watch_pid: int | None) -> None:
    (lhost, lport), (thost, tport) = _split(listen), _split(target)
    server = await asyncio.start_server(lambda r, w: _handle(r, w, thost, tport), lhost, lport, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        while not stop.is_set():
            if watch_pid is not None and not _alive(watch_pid):
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept connections on")
    parser.add_argument("--target", required=True, help="HOST:PORT to forward them to")
    parser.add_argument("--watch-pid", type=int, help="exit when this process is gone")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.target, args.watch_pid))


if __name__ == "__main__":
    main()
