"""Routing decisions: carto_proxy against the peers that read the same variables.

Prints µs per decision for a mixed set of CARTO-like targets, against NO_PROXY lists of 4, 100
and 10,000 entries, for:

- carto_proxy, first decision (every target string new: the route cache misses) and repeated
  decision (the same strings again: the cache answers);
- requests.utils.should_bypass_proxies (URL string in);
- urllib.request.proxy_bypass_environment with pre-read proxies (urlsplit + the call);
- httpx's client routing: httpx.URL(string) + Client._transport_for_url, with mounts built
  by httpx itself from the same NO_PROXY (trust_env).

Then the import cost of carto_proxy over a bare interpreter. Figures, not a test: run it on an
idle machine (``nox -s bench`` or ``python bench/route.py``). Each figure is the best of
several timed rounds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence

import httpx
import requests.utils

from carto_proxy import ProxyConfig

PROXY = "http://my-proxy:3128"
CARTO_ENTRIES = ["localhost", ".svc.cluster.local", "mega.io", "dropbox.com"]
TARGETS = [
    "https://auth.carto.com/oauth/token",
    "https://bigquery.googleapis.com/bigquery/v2/projects/p/queries",
    "https://xy12345.eu-central-1.snowflakecomputing.com/session/v1/login-request",
    "https://storage.googleapis.com/carto-bucket/o/file.csv",
    "https://api.mapbox.com/geocoding/v5/mapbox.places/x.json",
    "https://mega.io/file/abc",
    "http://tiles.svc.cluster.local:8080/v1/tiles",
    "https://clientstream.launchdarkly.com/eval",
]
ROUND_SECONDS = 0.25
ROUNDS = 5


def no_proxy_list(size: int) -> str:
    filler = [f"host{i}.corp{i % 50}.example" for i in range(size - len(CARTO_ENTRIES))]
    return ",".join([*filler, *CARTO_ENTRIES])


def per_call(make_calls: Callable[[int], Callable[[], None]]) -> float:
    """Best µs per decision over ROUNDS rounds of about ROUND_SECONDS each."""
    calls = 1
    while True:  # find a batch size that lasts about ROUND_SECONDS
        run = make_calls(calls)
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        if elapsed > ROUND_SECONDS / 4 or calls > 2_000_000:
            break
        calls *= 4
    best = []
    for _ in range(ROUNDS):
        run = make_calls(calls)
        start = time.perf_counter()
        run()
        best.append((time.perf_counter() - start) / calls * 1e6)
    return min(best)


def cycle(targets: Sequence[str], count: int) -> list[str]:
    return [targets[i % len(targets)] for i in range(count)]


def carto_first(no_proxy: str) -> Callable[[int], Callable[[], None]]:
    config = ProxyConfig.from_env(
        environ={"https_proxy": PROXY, "http_proxy": PROXY, "no_proxy": no_proxy}
    )

    def make(count: int) -> Callable[[], None]:
        stamp = time.perf_counter_ns()  # new strings every round: the cache always misses
        urls = [f"{url}?n={stamp}-{i}" for i, url in enumerate(cycle(TARGETS, count))]
        route = config.route
        return lambda: [route(url) for url in urls] and None

    return make


def carto_repeated(no_proxy: str) -> Callable[[int], Callable[[], None]]:
    config = ProxyConfig.from_env(
        environ={"https_proxy": PROXY, "http_proxy": PROXY, "no_proxy": no_proxy}
    )

    def make(count: int) -> Callable[[], None]:
        urls = cycle(TARGETS, count)
        route = config.route
        return lambda: [route(url) for url in urls] and None

    return make


def requests_bypass(no_proxy: str) -> Callable[[int], Callable[[], None]]:
    def make(count: int) -> Callable[[], None]:
        urls = cycle(TARGETS, count)
        bypass = requests.utils.should_bypass_proxies
        return lambda: [bypass(url, no_proxy) for url in urls] and None

    return make


def urllib_bypass(no_proxy: str) -> Callable[[int], Callable[[], None]]:
    proxies = {"https": PROXY, "http": PROXY, "no": no_proxy}

    def make(count: int) -> Callable[[], None]:
        urls = cycle(TARGETS, count)
        bypass, split = urllib.request.proxy_bypass_environment, urllib.parse.urlsplit
        return lambda: [bypass(split(url).hostname or "", proxies) for url in urls] and None

    return make


def httpx_routing(no_proxy: str) -> Callable[[int], Callable[[], None]]:
    saved = {k: os.environ.get(k) for k in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")}
    os.environ.update({"HTTPS_PROXY": PROXY, "HTTP_PROXY": PROXY, "NO_PROXY": no_proxy})
    try:
        client = httpx.Client()  # trust_env: httpx turns NO_PROXY into its mounts
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def make(count: int) -> Callable[[], None]:
        urls = cycle(TARGETS, count)
        pick, url_type = client._transport_for_url, httpx.URL
        return lambda: [pick(url_type(url)) for url in urls] and None

    return make


def import_cost(runs: int = 25) -> dict[str, float]:
    """Fastest wall time (ms) of a bare interpreter and of the import statements.

    Bytecode caching is turned back on (this workplace sets PYTHONDONTWRITEBYTECODE, which an
    installed wheel never suffers from: pip compiles it) and a warm-up run writes the caches.
    The minimum of interleaved runs is the least noisy figure for process start-up.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    codes = {
        "bare interpreter": "pass",
        "import carto_proxy": "import carto_proxy",
        "from carto_proxy import ProxyConfig": "from carto_proxy import ProxyConfig",
    }
    for code in codes.values():
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
    times: dict[str, list[float]] = {name: [] for name in codes}
    for _ in range(runs):
        for name, code in codes.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env=env)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: min(values) for name, values in times.items()}


def main() -> None:
    sizes = (4, 100, 10_000)
    peers = {
        "carto_proxy first": carto_first,
        "carto_proxy repeated": carto_repeated,
        "requests should_bypass_proxies": requests_bypass,
        "urllib proxy_bypass_environment": urllib_bypass,
        "httpx URL + _transport_for_url": httpx_routing,
    }
    figures: dict[str, dict[int, float]] = {name: {} for name in peers}
    per_call(carto_first(no_proxy_list(4)))  # warm-up: first-run effects out of the figures
    for size in sizes:
        no_proxy = no_proxy_list(size)
        for name, bench in peers.items():
            figures[name][size] = per_call(bench(no_proxy))
    print(
        f"Routing decisions, µs per decision ({len(TARGETS)} CARTO-like targets, best of "
        f"{ROUNDS} rounds; Python {sys.version.split()[0]})\n"
    )
    header = "".join(f"{f'NO_PROXY={size}':>16}" for size in sizes)
    print(f"{'implementation':34}{header}")
    for name in peers:
        print(f"{name:34}" + "".join(f"{figures[name][size]:16.2f}" for size in sizes))
    first = figures["carto_proxy first"]
    print("\nRatio: peer time / carto_proxy first-decision time (higher = carto_proxy faster)")
    for name in list(peers)[2:]:
        print(f"{name:34}" + "".join(f"{figures[name][s] / first[s]:15.1f}x" for s in sizes))
    print(f"\ncarto_proxy first decision, NO_PROXY=10000 vs 4: {first[10_000] / first[4]:.2f}x")
    costs = import_cost()
    bare = costs.pop("bare interpreter")
    print(f"\nStart-up, fastest of 25 runs: bare interpreter {bare:.1f} ms")
    for name, value in costs.items():
        print(f"{name:36}{value:8.1f} ms (+{value - bare:.1f} ms)")


if __name__ == "__main__":
    main()
