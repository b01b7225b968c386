"""Child process for the bounded-memory test: 50 MB bodies through a RecordingProxy.

    python -m tests.testing.memory_child

Sends a 50 MB request body with a Content-Length, then a chunked one, to a sink origin that
counts and discards, and downloads a 50 MB response with a Content-Length, then one framed by
closing the connection. The client, the sink and the proxy share the process; none of them
holds a body. Prints one JSON line: the growth of the peak resident size (MB) over the
transfers, what the sink counted and what the proxy recorded.
"""

from __future__ import annotations

import json
import resource
import socket
import threading
from collections.abc import Iterable, Iterator

from carto_proxy.testing import RecordingProxy

SIZE = 50 * 1024 * 1024
BLOCK = b"x" * 65536


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return -1


def _sink(conn: socket.socket) -> None:
    """Answer one request: count its body, or send SIZE bytes for GET /sized and /eof."""
    with conn:
        head, rest = _read_head(conn)
        if head.startswith(b"GET /sized"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE)
        elif head.startswith(b"GET /eof"):
            conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        if head.startswith(b"GET"):
            for _ in range(SIZE // len(BLOCK)):
                conn.sendall(BLOCK)
            return
        left = _length(head) - len(rest)
        while left > 0:
            left -= len(conn.recv(min(left, 262144)))
        answer = b"%d" % (_length(head) - left)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))


def _serve(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_sink, args=(conn,), daemon=True).start()


def _sized_body() -> Iterator[bytes]:
    for _ in range(SIZE // len(BLOCK)):
        yield BLOCK


def _chunked_body() -> Iterator[bytes]:
    for block in _sized_body():
        yield b"%x\r\n" % len(block) + block + b"\r\n"
    yield b"0\r\n\r\n"


def _exchange(proxy: RecordingProxy, head: str, body: Iterable[bytes] = ()) -> tuple[int, bytes]:
    """Send a request through the proxy; return its answer's body length and last bytes."""
    with socket.create_connection((proxy.host, proxy.port), timeout=30) as sock:
        sock.sendall(head.encode())
        for part in body:
            sock.sendall(part)
        response, tail = _read_head(sock)
        got, left = len(tail), _length(response) - len(tail)
        while left > 0:
            chunk = sock.recv(min(left, 262144))
            got, left, tail = got + len(chunk), left - len(chunk), (tail + chunk)[-32:]
        return got, tail


def main() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_serve, args=(listener,), daemon=True).start()
    port = listener.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with RecordingProxy(timeout=30) as proxy:
        _exchange(proxy, f"POST {url}/warm-up HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        proxy.clear()
        before = _peak_mb()
        sized = f"POST {url}/ HTTP/1.1\r\nHost: x\r\nContent-Length: {SIZE}\r\n\r\n"
        chunked = f"POST {url}/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        answers = [
            _exchange(proxy, sized, _sized_body()),
            _exchange(proxy, chunked, _chunked_body()),
            _exchange(proxy, f"GET {url}/sized HTTP/1.1\r\nHost: x\r\n\r\n"),
            _exchange(proxy, f"GET {url}/eof HTTP/1.1\r\nHost: x\r\n\r\n"),
        ]
        growth = _peak_mb() - before
        records = proxy.wait_for(4)
    listener.close()
    print(
        json.dumps(
            {
                "growth_mb": growth,
                "answers": [[length, tail.decode("latin-1")] for length, tail in answers],
                "records": [[r.status, r.bytes_up, r.bytes_down] for r in records],
            }
        )
    )


if __name__ == "__main__":
    main()
