"""docs/security.md's self-signed certificate for the gateway's TLS, made with openssl as the docs write it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="the certificate is made with openssl")


def self_signed(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for gateway.internal, localhost and 127.0.0.1, valid 30 days."""
    key, cert = folder / "gw.key", folder / "gw.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=gateway.internal",
         "-addext", "subjectAltName=DNS:gateway.internal,DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
