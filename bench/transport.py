"""Throughput of carto_proxy's HTTP adapters against hand-built clients, through a real Squid.

Compares, in the same run and through the same local Squid (plain ``http_port``):

* ``carto_proxy.adapters.httpx.client(config)`` against a hand-built
  ``httpx.Client(proxy=..., mounts=...)`` doing the same routing;
* ``carto_proxy.adapters.urllib3.pool_manager(config)`` against a plain
  ``urllib3.ProxyManager``;
* ``carto_proxy.adapters.aiohttp.session(config)`` against a hand-built
  ``aiohttp.ClientSession`` passing ``proxy=`` with each request (each request of either runs
  to completion in the session's own event loop);
* each of those two carto_proxy clients with an egress audit active
  (``carto_proxy.audit(config, on_violation="raise")``, so that a violation would fail the
  run) against the same client without one.

Each round runs both clients of a pair for the same number of sequential requests, taking
turns every few requests in ABBA order, so drift in the machine's speed hits both sides alike.
The figure reported is the median of the per-round ratios, carto_proxy / hand-built (audited /
not audited for the audit pairs); the run
fails (exit status 1) when one is below ``--floor`` (0.95 by default). The origins run in a
child process, so that their threads do not compete with the clients for this process's GIL.

Run from the repository root::

    python bench/transport.py                 # both targets, 15 rounds of 200 requests
    python bench/transport.py --target https --rounds 31 --requests 500

Needs squid (squid-openssl), httpx, urllib3, aiohttp, trustme and pytest (the harness in
tests/support imports it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import certifi  # noqa: E402
import httpx  # noqa: E402
import urllib3  # noqa: E402

from carto_proxy import ProxyConfig, audit  # noqa: E402
from carto_proxy.adapters import aiohttp as carto_aiohttp  # noqa: E402
from carto_proxy.adapters import httpx as carto_httpx  # noqa: E402
from carto_proxy.adapters import urllib3 as carto_urllib3  # noqa: E402
from tests.support import origins as origin_servers  # noqa: E402
from tests.support.names import API_HOST, DIRECT_HOST, TEST_HOSTS  # noqa: E402
from tests.support.pki import PKI  # noqa: E402
from tests.support.squid import Squid, find_squid  # noqa: E402

_START_TIMEOUT = 30.0

Get = Callable[[str], None]


@dataclass
class Contender:
    """One client under measurement: how to send a request and how to close it."""

    label: str
    get: Get
    close: Callable[[], None]
    rates: list[float] = field(default_factory=list)
    # Entered around each of its turns, outside the timing (the audit pairs start one there).
    around: Callable[[], AbstractContextManager[object]] = nullcontext


@dataclass
class Pair:
    """carto_proxy's client and the hand-built client it is compared with."""

    name: str
    carto: Contender
    hand: Contender

    def ratios(self) -> list[float]:
        return [c / h for c, h in zip(self.carto.rates, self.hand.rates, strict=True)]


class Origins(NamedTuple):
    """Where the child process's origins listen, and the CA that signs the HTTPS one."""

    ca_path: str
    http_port: int
    https_port: int


def serve_origins(directory: str, conn: Connection) -> None:
    """Child process: run the test origins until the parent says stop (or goes away)."""
    pki = PKI.create(Path(directory))
    with origin_servers.start_origins(pki) as servers:
        conn.send(Origins(str(pki.origin_ca_path), servers.http.port, servers.https.port))
        with contextlib.suppress(EOFError):
            conn.recv()


@contextlib.contextmanager
def origins_process(directory: Path) -> Iterator[Origins]:
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=serve_origins, args=(str(directory), child), daemon=True
    )
    process.start()
    try:
        if not parent.poll(_START_TIMEOUT):
            raise RuntimeError("the origins did not start")
        yield parent.recv()
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        process.join(_START_TIMEOUT)
        if process.is_alive():
            process.kill()
            process.join(5)


def origin_context(ca_path: str) -> ssl.SSLContext:
    """What carto_proxy builds from NODE_EXTRA_CA_CERTS: certifi plus the origin CA."""
    context = ssl.create_default_context(cafile=certifi.where())
    context.load_verify_locations(cafile=ca_path)
    return context


def httpx_get(client: httpx.Client) -> Get:
    def get(url: str) -> None:
        client.get(url).raise_for_status()

    return get


def urllib3_get(manager: urllib3.PoolManager) -> Get:
    def get(url: str) -> None:
        response = manager.request("GET", url)
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")

    return get


def carto_httpx_client(config: ProxyConfig) -> Contender:
    carto = carto_httpx.client(config)
    return Contender("carto_proxy.adapters.httpx.client", httpx_get(carto), carto.close)


def carto_urllib3_client(config: ProxyConfig) -> Contender:
    carto = carto_urllib3.pool_manager(config)
    return Contender("carto_proxy.adapters.urllib3.pool_manager", urllib3_get(carto), carto.clear)


def httpx_pair(config: ProxyConfig, proxy: str, ca_path: str) -> Pair:
    context = origin_context(ca_path)
    # The same routing by hand: everything through the proxy, the NO_PROXY host direct.
    hand = httpx.Client(
        proxy=httpx.Proxy(proxy),
        verify=context,
        trust_env=False,
        mounts={f"all://{DIRECT_HOST}": httpx.HTTPTransport(verify=context, trust_env=False)},
    )
    return Pair(
        "httpx",
        carto_httpx_client(config),
        Contender("httpx.Client(proxy=, mounts=)", httpx_get(hand), hand.close),
    )


def urllib3_pair(config: ProxyConfig, proxy: str, ca_path: str) -> Pair:
    hand = urllib3.ProxyManager(proxy, ssl_context=origin_context(ca_path))
    return Pair(
        "urllib3",
        carto_urllib3_client(config),
        Contender("urllib3.ProxyManager", urllib3_get(hand), hand.clear),
    )


def aiohttp_contender(
    label: str, make: Callable[[], aiohttp.ClientSession], proxy: str | None = None
) -> Contender:
    """A session built by *make* in an event loop of its own; each GET passes *proxy*."""
    loop = asyncio.new_event_loop()

    async def build() -> aiohttp.ClientSession:
        return make()

    session = loop.run_until_complete(build())
    options = {} if proxy is None else {"proxy": proxy}

    async def fetch(url: str) -> None:
        async with session.get(url, **options) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{url}: HTTP {response.status}")

    def get(url: str) -> None:
        loop.run_until_complete(fetch(url))

    def close() -> None:
        loop.run_until_complete(session.close())
        loop.close()

    return Contender(label, get, close)


def aiohttp_pair(config: ProxyConfig, proxy: str, ca_path: str) -> Pair:
    context = origin_context(ca_path)
    hand = aiohttp_contender(
        "aiohttp.ClientSession(), get(proxy=)",
        lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)),
        proxy,
    )
    carto = aiohttp_contender(
        "carto_proxy.adapters.aiohttp.session", lambda: carto_aiohttp.session(config)
    )
    return Pair("aiohttp", carto, hand)


def audit_pair(name: str, make: Callable[[ProxyConfig], Contender], config: ProxyConfig) -> Pair:
    """A carto_proxy client with an audit active against the same kind of client without one.

    ``on_violation="raise"``: a lookup or connection going around the proxy fails the run.
    """
    watched = make(config)
    watched.label += ", audit on"
    watched.around = lambda: audit(config, on_violation="raise")
    return Pair(f"{name}+audit", watched, make(config))


def run(
    pairs: list[Pair], url: str, *, rounds: int, requests: int, chunk: int, warmup: int
) -> None:
    """Measure every pair for *rounds* rounds of *requests* requests per contender.

    Within a round the two contenders of a pair take turns every *chunk* requests, in ABBA
    order, so a slowdown of the machine (other processes, CPU frequency) lasting longer than
    a chunk hits both alike.
    """
    for pair in pairs:
        for contender in (pair.carto, pair.hand):
            for _ in range(warmup):
                contender.get(url)
    for _ in range(rounds):
        for pair in pairs:
            spent = {id(pair.carto): 0.0, id(pair.hand): 0.0}
            done = 0
            turn = 0
            while done < requests:
                size = min(chunk, requests - done)
                order = (pair.carto, pair.hand) if turn % 2 == 0 else (pair.hand, pair.carto)
                for contender in order:
                    with contender.around():
                        started = time.perf_counter()
                        for _ in range(size):
                            contender.get(url)
                        spent[id(contender)] += time.perf_counter() - started
                done += size
                turn += 1
            for contender in (pair.carto, pair.hand):
                contender.rates.append(requests / spent[id(contender)])


def squid_version(binary: str) -> str:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10).stdout
    return out.splitlines()[0] if out else "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds (default 15)")
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per client a round (200)"
    )
    parser.add_argument("--chunk", type=int, default=10, help="requests per turn (10)")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured requests first (50)")
    parser.add_argument("--floor", type=float, default=0.95, help="minimum ratio (0.95)")
    parser.add_argument(
        "--target", choices=("http", "https", "both"), default="both", help="origin scheme"
    )
    parser.add_argument(
        "--pairs",
        default="httpx,urllib3,aiohttp,httpx+audit,urllib3+audit",
        help="comma-separated pairs to measure (default: all)",
    )
    args = parser.parse_args(argv)

    binary = find_squid()
    if binary is None:
        print("squid not found: install squid-openssl", file=sys.stderr)
        return 1 if os.environ.get("CI", "").lower() == "true" else 0

    print(f"python {platform.python_version()}, httpx {httpx.__version__}, urllib3 ", end="")
    print(f"{urllib3.__version__}, aiohttp {aiohttp.__version__}, {squid_version(binary)}")
    print(
        f"{args.rounds} rounds x {args.requests} sequential requests per client, "
        f"taking turns every {args.chunk} requests (ABBA)"
    )
    failed = False
    with (
        tempfile.TemporaryDirectory(prefix="carto-proxy-bench-") as tmp,
        origins_process(Path(tmp)) as origins,
        Squid(hosts=TEST_HOSTS) as squid,
    ):
        config = ProxyConfig.from_env(
            environ={
                "HTTP_PROXY": squid.http_url,
                "HTTPS_PROXY": squid.http_url,
                "NO_PROXY": DIRECT_HOST,
                "NODE_EXTRA_CA_CERTS": origins.ca_path,
            }
        )
        targets = ("http", "https") if args.target == "both" else (args.target,)
        header = f"{'target':7} {'client':52} {'req/s':>8}  {'ratio':>6}  {'min':>5}"
        print(header)
        print("-" * len(header))
        for scheme in targets:
            port = origins.https_port if scheme == "https" else origins.http_port
            url = f"{scheme}://{API_HOST}:{port}/bench"
            makers: dict[str, Callable[[], Pair]] = {
                "httpx": lambda: httpx_pair(config, squid.http_url, origins.ca_path),
                "urllib3": lambda: urllib3_pair(config, squid.http_url, origins.ca_path),
                "aiohttp": lambda: aiohttp_pair(config, squid.http_url, origins.ca_path),
                "httpx+audit": lambda: audit_pair("httpx", carto_httpx_client, config),
                "urllib3+audit": lambda: audit_pair("urllib3", carto_urllib3_client, config),
            }
            pairs = [makers[name.strip()]() for name in args.pairs.split(",")]
            try:
                run(
                    pairs,
                    url,
                    rounds=args.rounds,
                    requests=args.requests,
                    chunk=args.chunk,
                    warmup=args.warmup,
                )
            finally:
                for pair in pairs:
                    pair.carto.close()
                    pair.hand.close()
            for pair in pairs:
                ratios = pair.ratios()
                ratio = statistics.median(ratios)
                verdict = "" if ratio >= args.floor else f"  < floor {args.floor}"
                failed = failed or ratio < args.floor
                carto, hand = pair.carto, pair.hand
                print(
                    f"{scheme:7} {carto.label:52} {statistics.median(carto.rates):8.0f}"
                    f"  {ratio:6.3f}  {min(ratios):5.2f}{verdict}"
                )
                print(f"{'':7} {hand.label:52} {statistics.median(hand.rates):8.0f}")
    print(
        "ratio: median over rounds of carto_proxy req/s / hand-built req/s (second pair of each "
        "client: audit on / audit off); min: worst round"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
