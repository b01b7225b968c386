"""Raw-socket clients of RecordingProxy, shared by its test modules."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import urllib3

from carto_proxy.testing._recording_proxy import ProxyRecord, RecordingProxy

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
NOT_ALLOWED = "not a loopback address or mapped upstream"

# --- client helpers ---------------------------------------------------------------------------


def _proxy_socket(proxy: RecordingProxy) -> socket.socket:
    sock = socket.create_connection((proxy.host, proxy.port), timeout=TIMEOUT)
    if not proxy.tls:
        return sock
    context = ssl.create_default_context(cafile=proxy.ca_file)
    try:
        return context.wrap_socket(sock, server_hostname="localhost")
    except BaseException:
        sock.close()
        raise


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _recv_all(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _recv_exact(sock: socket.socket, size: int, data: bytes = b"") -> bytes:
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def _connect(sock: socket.socket, authority: str, extra: bytes = b"") -> tuple[int, bytes]:
    """Send CONNECT (and ``extra`` right behind it); return the status and what followed."""
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode() + extra)
    head, rest = _read_head(sock)
    return int(head.split(b" ", 2)[1]), rest


def _echo(sock: socket.socket, payload: bytes) -> bytes:
    """Send ``payload`` through an established tunnel and read as many bytes back.

    A plain socket is then half-closed and must see the end of the stream. A TLS socket is not:
    ``SSLSocket.shutdown`` would drop the TLS layer to the proxy.
    """
    sock.sendall(payload)
    echoed = _recv_exact(sock, len(payload))
    if not isinstance(sock, ssl.SSLSocket):
        sock.shutdown(socket.SHUT_WR)
        assert _recv_all(sock) == b""
    return echoed


def _get(sock: socket.socket, url: str, extra_headers: str = "") -> tuple[int, bytes]:
    """Send one absolute-form GET and read its Content-Length framed response."""
    sock.sendall(f"GET {url} HTTP/1.1\r\nHost: ignored\r\n{extra_headers}\r\n".encode())
    head, rest = _read_head(sock)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, _recv_exact(sock, length, rest)


def _close_pool(manager: urllib3.ProxyManager, url: str) -> None:
    """Close the pooled connection for ``url`` now: ``clear()`` leaves that to the GC."""
    manager.connection_from_url(url).close()


def _proxy_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("Recording")]


def _one(records: list[ProxyRecord]) -> ProxyRecord:
    assert len(records) == 1, records
    return records[0]


def _run_child(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module args`` from the repository root; return the JSON it printed."""
    child = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    result: dict[str, Any] = json.loads(child.stdout)
    return result
