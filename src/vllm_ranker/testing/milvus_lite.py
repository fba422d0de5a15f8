"""``milvus-lite server`` on a free loopback port: the remote (cluster) path of Milvus, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from vllm_ranker.local_vllm.network import free_port


@contextlib.contextmanager
def milvus_lite_server(data_dir: Path, start_timeout: float = 60.0) -> Iterator[str]:
    """Run ``milvus-lite server`` on a free loopback port with its data in ``data_dir``; yields its URI.

    It speaks the same gRPC protocol as a Milvus standalone server or cluster, so it proves the remote path
    (and keeps Milvus out of the caller's process, as in a real deployment). Raises RuntimeError, with the end
    of the server's log, if it exits or does not listen within ``start_timeout`` seconds.
    """
    port = free_port()
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            # The launcher adds a real Milvus server's keepalive policy (see _milvus_lite_launcher.py).
            [
                sys.executable,
                "-m",
                "vllm_ranker._milvus_lite_launcher",
                "server",
                "--data-dir",
                str(data_dir / "db"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"milvus-lite server exited: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"milvus-lite server did not listen within {start_timeout:g} s") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
