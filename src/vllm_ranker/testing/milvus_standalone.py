"""A real Milvus standalone server (``milvus-server`` of ``pip install milvus==2.3.5``) on free loopback ports.

Milvus Lite's server is not the Milvus most users run: its HTTP/2 windows are 4 MiB, where a real Milvus (grpc-go)
keeps 64 KiB ones, so flow-control bugs of a proxy in front of it stay hidden. The ``milvus`` 2.3.5 wheel holds the
real binary with an embedded etcd and local storage (no MinIO, no Pulsar): 5-45 s to start, depending on the machine,
~250 MB of binaries unpacked into the data directory (removed on stop), ~300 MB of memory for a small collection.
Milvus 2.3 has no hybrid search, BM25 or Function support: plain dense search only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from vllm_ranker.local_servers import data_home, free_port, group_members, log_tail, signal_group
from vllm_ranker.testing import process_guard

ENV_MILVUS_SERVER = "VLLM_RANKER_MILVUS_SERVER"
MILVUS_SERVER_SPEC = "milvus==2.3.5"


def default_milvus_venv() -> Path:
    """Where scripts/test.sh installs it: one venv per user, like the vLLM venv beside it."""
    return data_home() / "vllm-ranker" / "milvus-2.3.5-venv"


def install_hint() -> str:
    venv = default_milvus_venv()
    configured = os.environ.get(ENV_MILVUS_SERVER)
    named = f"${ENV_MILVUS_SERVER}={configured} is not executable; " if configured else ""
    return named + (
        f"python3 -m venv {venv} && {venv}/bin/pip install {MILVUS_SERVER_SPEC} (scripts/test.sh does this), "
        f"or set {ENV_MILVUS_SERVER} to a milvus-server executable"
    )


# Every component of a standalone Milvus listens on its own port, on all interfaces. Left to itself the wrapper
# takes Milvus's defaults (19530, 53100, ...) or the next free one after each, which races with a second server
# starting beside it; a free port for each keeps two runs apart.
_PORT_OPTIONS = (
    "--proxy-port",
    "--etcd-port",
    "--proxy-internal-port",
    "--root-coord-port",
    "--query-coord-port",
    "--query-node-port",
    "--index-coord-port",
    "--index-node-port",
    "--data-coord-port",
    "--data-node-port",
)
# The embedded etcd ignores --etcd-port (that only tells Milvus where to connect) and listens on 2379 and 2380
# unless its own config file, named by Milvus's ETCD_CONFIG_PATH variable, says otherwise.
_ETCD_CONFIG = """\
listen-client-urls: http://127.0.0.1:{client}
advertise-client-urls: http://127.0.0.1:{client}
listen-peer-urls: http://127.0.0.1:{peer}
initial-advertise-peer-urls: http://127.0.0.1:{peer}
initial-cluster: default=http://127.0.0.1:{peer}
"""
# Milvus writes a file per process here whatever TMPDIR says, and leaves it behind when stopped.
_SERVER_ID_DIR = Path("/tmp/milvus")


def find_milvus_server() -> str | None:
    """``$VLLM_RANKER_MILVUS_SERVER``, else the one scripts/test.sh installs; None when it is not executable."""
    configured = os.environ.get(ENV_MILVUS_SERVER)
    path = Path(configured) if configured else default_milvus_venv() / "bin" / "milvus-server"
    return str(path) if os.access(path, os.X_OK) else None


@contextlib.contextmanager
def milvus_standalone_server(
    data_dir: Path, executable: str | None = None, start_timeout: float = 120.0
) -> Iterator[str]:
    """Run ``milvus-server`` with its data, logs and binaries in ``data_dir``; yields its URI once it answers.

    The server runs in its own process group (the ``milvus-server`` wrapper and the Milvus binary it starts) and
    is stopped by group, SIGTERM then SIGKILL, however the block ends. Raises RuntimeError, with the end of the
    server's logs, if no executable is found, the server dies, or it does not answer within ``start_timeout``.
    """
    executable = executable or find_milvus_server()
    if executable is None:
        raise RuntimeError(f"no milvus-server: {install_hint()}")
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = _distinct_free_ports(len(_PORT_OPTIONS) + 1)  # the last one: the embedded etcd's peer port
    etcd_config = data_dir / "embed-etcd.yaml"
    etcd_config.write_text(_ETCD_CONFIG.format(client=ports[1], peer=ports[-1]))
    argv = [executable, "--data", str(data_dir)]
    for option, port in zip(_PORT_OPTIONS, ports, strict=False):
        argv += [option, str(port)]
    log_path = data_dir / "milvus-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ETCD_CONFIG_PATH": str(etcd_config)},
            start_new_session=True,  # its own group: the wrapper leaves Milvus running when it gets SIGTERM
        )
    members: set[int] = set()
    try:
        # Recorded, so that an interrupted test run stops it too (see process_guard).
        with process_guard.guarded(process.pid, f"milvus-server in {data_dir}"):
            uri = f"http://127.0.0.1:{ports[0]}"
            _wait_until_it_answers(uri, process, data_dir, start_timeout, members)
            yield uri
    finally:
        members.update(group_members(process.pid))
        _stop_group(process)
        for pid in members:
            (_SERVER_ID_DIR / f"server_id_{pid}").unlink(missing_ok=True)
        # The unpacked binaries are a copy of the wheel's: only the data and the logs are worth keeping.
        shutil.rmtree(data_dir / "bin", ignore_errors=True)


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:  # a port freed a moment ago may come back
            ports.append(port)
    return ports


def _wait_until_it_answers(
    uri: str, process: subprocess.Popen[bytes], data_dir: Path, timeout: float, members: set[int]
) -> None:
    import pymilvus  # here, not at the top: importing the test kit stays as light as it was

    deadline = time.monotonic() + timeout
    while True:
        group = group_members(process.pid)
        members.update(group)
        # The wrapper does not reap the Milvus binary: a binary that died is a zombie, and the wrapper would wait
        # three minutes before it says so.
        if process.poll() is not None or "Z" in group.values():
            raise RuntimeError(f"milvus-server exited while starting:\n{_logs(data_dir)}")
        try:
            client = pymilvus.MilvusClient(uri=uri, timeout=2)
        except pymilvus.MilvusException:
            pass
        else:
            try:
                client.get_server_version(timeout=2)
                return
            except pymilvus.MilvusException:
                pass  # listening, but its coordinators are not all up yet
            finally:
                client.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"milvus-server did not answer on {uri} within {timeout:g} s:\n{_logs(data_dir)}")
        time.sleep(0.5)


def _stop_group(process: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    # An idle Milvus 2.3.5 stops within a second of SIGTERM; once a collection is loaded its shutdown stalls (its
    # root coordinator goes first and the others retry it for minutes). A test server's data is throwaway, so it
    # gets a short grace, then SIGKILL; its ports are free once no live process is left in the group.
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        signal_group(process.pid, sig)
        deadline = time.monotonic() + wait
        while any(state != "Z" for state in group_members(process.pid).values()) and time.monotonic() < deadline:
            process.poll()
            time.sleep(0.1)
    process.wait()


def _logs(data_dir: Path) -> str:
    stdout = data_dir / "logs" / "milvus-stdout.log"
    # Milvus logs the cause (a port taken, a bad path) as its first error; what follows is the fallout.
    lines = stdout.read_text(errors="replace").splitlines() if stdout.exists() else []
    first_errors = [line[:600] for line in lines if "[ERROR]" in line or "[FATAL]" in line][:3]
    parts = [data_dir / "milvus-server.log", data_dir / "logs" / "milvus-stderr.log", stdout]
    tails = [f"--- {path.name}:\n{log_tail(path, 20)}" for path in parts if path.exists()]
    return "\n".join(["--- first errors:", *first_errors, *tails])
