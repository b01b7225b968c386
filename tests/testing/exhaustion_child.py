"""Child process for the descriptor-exhaustion test: run out of descriptors, measure, recover.

    python -m tests.testing.exhaustion_child proxy|origin

Starts a LocalOrigin and a RecordingProxy, lowers ``RLIMIT_NOFILE`` and fills every free
descriptor, then lets a client (its socket made beforehand) connect to one of them: the server
cannot accept it. Prints one JSON line: the CPU seconds the process spent over a one-second
window of exhaustion, and the status line the client read once descriptors were freed.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import time

from carto_proxy.testing import LocalOrigin, RecordingProxy

WINDOW = 1.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _exhaust() -> list[int]:
    """Lower the descriptor limit near what is in use, then take every one left."""
    highest = max(int(name) for name in os.listdir("/proc/self/fd"))
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 16, hard))
    taken: list[int] = []
    while True:
        try:
            taken.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            return taken


def main(kind: str) -> None:
    with LocalOrigin() as origin, RecordingProxy() as proxy:
        if kind == "proxy":
            port = proxy.port
            target = f"http://127.0.0.1:{origin.port}/"
        else:
            port, target = origin.port, "/"
        request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        client = socket.socket()
        client.settimeout(10)
        taken = _exhaust()
        client.connect(("127.0.0.1", port))  # lands in the backlog: accept() has no descriptor
        client.sendall(request)
        before = _cpu()
        time.sleep(WINDOW)  # the measurement window, not a synchronisation
        spent = _cpu() - before
        for descriptor in taken:
            os.close(descriptor)
        answer = b""
        while b"\r\n" not in answer and (chunk := client.recv(65536)):
            answer += chunk
        client.close()
    status = answer.partition(b"\r\n")[0].decode("latin-1")
    print(json.dumps({"cpu": spent, "window": WINDOW, "descriptors": len(taken), "status": status}))


if __name__ == "__main__":
    main(sys.argv[1])
