"""Servers on this machine, the part every starter shares (standard library only): loopback checks and free ports
(``network.py``), process groups and log tails (``processes.py``), and ``milvus-lite server`` started and stopped
(``milvus_lite.py``, running ``_milvus_lite_launcher.py``). Below the rooms that start or expose servers (the
managed vLLM, the test kit, the gateway, the page, the command line), so each question has one answer.
"""

from vllm_ranker.local_servers.milvus_lite import LAUNCHER, MilvusLite, MilvusLiteError
from vllm_ranker.local_servers.network import LOOPBACK, connect_host, free_port, is_loopback, port_in_use, url_host
from vllm_ranker.local_servers.processes import data_home, descendants, group_members, log_tail, signal_group

__all__ = [
    "LAUNCHER",
    "LOOPBACK",
    "MilvusLite",
    "MilvusLiteError",
    "connect_host",
    "data_home",
    "descendants",
    "free_port",
    "group_members",
    "is_loopback",
    "log_tail",
    "port_in_use",
    "signal_group",
    "url_host",
]
