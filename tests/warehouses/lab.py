"""The warehouse lab: stand-ins on real names, two proxies, scenarios classified connection by
connection.

* The **config proxy** is a real Squid named ``my-proxy`` (plain :3128 and TLS :3129), the
  proxy the scenario's :class:`~carto_proxy.ProxyConfig` names; it connects out from
  ``CONFIG_SOURCE``.
* The **environment's proxy** is a second Squid, ``env-proxy:3128``, named only by the
  scenario process's environment; it connects out from ``ENV_SOURCE``.
* Each scenario runs in a fresh process in a mount namespace whose ``/etc/hosts`` holds the
  lab's names and whose ``/etc/resolv.conf`` names the DNS logger, in this (private) network
  namespace.

Three environments, after the issue: the environment names a *different* proxy; it has no
proxy variables (a config from a ``.env`` file or Helm values); it is CARTO's ``https://``
example (the config is read from it).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from carto_proxy import Action, Protocol, ProxyConfig, Warehouse
from tests.support.pki import PKI
from tests.support.squid import Squid
from tests.warehouses.network import (
    CONFIG_PROXY_IP,
    CONFIG_PROXY_NAME,
    CONFIG_SOURCE,
    DIRECT,
    ENV_PROXY_IP,
    ENV_PROXY_NAME,
    ENV_SOURCE,
    VIA_CONFIG,
    Connection,
    DNSLog,
    Tap,
    metadata_address,
)
from tests.warehouses.scenarios import TASK
from tests.warehouses.standins import HOSTS, NAMES, Host, start_standins

REPO: Final = Path(__file__).resolve().parents[2]
ENVIRONMENTS: Final = ("other-proxy", "no-proxy-variables", "carto-https")
METADATA_NO_PROXY: Final = "169.254.169.254,metadata,metadata.google.internal"
_SCENARIO_TIMEOUT: Final = 120
_MOUNT = (
    'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"'
)


def _both(**variables: str) -> dict[str, str]:
    return {
        case(name): value for name, value in variables.items() for case in (str.upper, str.lower)
    }


@dataclass(frozen=True, slots=True)
class Observation:
    """What one scenario did in one environment."""

    scenario: str
    environment: str
    outcome: Mapping[str, Any]
    config: ProxyConfig
    connections: list[tuple[Connection, str]]
    """Each connection a stand-in's tap accepted, with the route's expectation (via)."""
    proxy_connections: dict[str, int]
    """How many connections each proxy accepted from clients (``my-proxy``, ``env-proxy``)."""
    dns: list[str]
    """Names the scenario's process (or its children) sent to DNS: none should."""
    python_connects: list[str] = field(default_factory=list)
    """Where the scenario's Python code connected, as labels."""
    no_proxy: str = ""
    """What the configuration's NO_PROXY (and the environment's, if it has one) added."""

    @property
    def label(self) -> str:
        """The scenario, with what its NO_PROXY added."""
        return f"{self.scenario} (NO_PROXY+={self.no_proxy})" if self.no_proxy else self.scenario

    @property
    def ok(self) -> bool:
        return bool(self.outcome.get("ok"))

    def violations(self) -> list[str]:
        """Every connection that went elsewhere than its route, and any DNS lookup."""
        found = [
            f"{connection.authority} went {connection.via}, the route says {expected}"
            for connection, expected in self.connections
            if connection.via != expected
        ]
        if self.proxy_connections.get(ENV_PROXY_NAME):
            found.append(f"{self.proxy_connections[ENV_PROXY_NAME]} connection(s) to env-proxy")
        # Resolving the proxy's own name is every client's job; resolving a target is not.
        proxies = {CONFIG_PROXY_NAME, ENV_PROXY_NAME}
        found += [f"DNS lookup of {name}" for name in self.dns if name not in proxies]
        found += [where for where in self.python_connects if where.startswith("env-proxy")]
        return found

    def summary(self) -> str:
        """One cell of the lab's table."""
        if not self.ok:
            shown = self.outcome.get("code") or self.outcome.get("error")
            head = f"refused ({shown})" if self.outcome.get("error") == "ConfigError" else shown
        else:
            head = "ok"
        counts: dict[str, int] = {}
        for connection, _ in self.connections:
            key = f"{connection.authority} {connection.via}"
            counts[key] = counts.get(key, 0) + 1
        parts = [f"{key} ×{count}" for key, count in sorted(counts.items())]
        return f"{head}: " + ("; ".join(parts) if parts else "no connection")


class Lab:
    """Start with :func:`start_lab`; :meth:`run` a scenario in an environment."""

    def __init__(self, pki: PKI, directory: Path, taps: list[Tap], dns: DNSLog) -> None:
        self.pki, self.directory, self.taps, self.dns = pki, directory, taps, dns
        self._host_of = {(host.address, host.port): host for host in HOSTS}
        self._proxy_of = {
            (CONFIG_PROXY_IP, 3128): CONFIG_PROXY_NAME,
            (CONFIG_PROXY_IP, 3129): CONFIG_PROXY_NAME,
            (ENV_PROXY_IP, 3128): ENV_PROXY_NAME,
        }

    def environment(self, name: str, *, no_proxy: str = "") -> tuple[dict[str, str], Any]:
        """The process environment and the configuration's source for *name*."""
        bundle = str(self.pki.bundle_path)
        # Trust for clients that follow the environment, so that their connections complete.
        process = {"REQUESTS_CA_BUNDLE": bundle, "SSL_CERT_FILE": bundle}
        process["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = bundle
        excluded = ",".join(filter(None, ["localhost,127.0.0.1", no_proxy]))
        plain = f"http://{CONFIG_PROXY_NAME}:3128"
        config = _both(http_proxy=plain, https_proxy=plain, grpc_proxy=plain, no_proxy=excluded)
        config["NODE_EXTRA_CA_CERTS"] = bundle
        if name == "other-proxy":
            other = f"http://{ENV_PROXY_NAME}:3128"
            process |= _both(http_proxy=other, https_proxy=other, grpc_proxy=other)
            process |= _both(no_proxy="localhost,127.0.0.1")
            return process, config
        if name == "no-proxy-variables":
            return process, config
        # CARTO's https-proxy.env, with the lab's proxy and CA file.
        tls = f"https://{CONFIG_PROXY_NAME}:3129"
        carto = ",".join(filter(None, ["mega.io,dropbox.com,filestack.com", no_proxy]))
        process |= _both(http_proxy=tls, https_proxy=tls, no_proxy=carto)
        process |= {"NODE_EXTRA_CA_CERTS": bundle, "NODE_TLS_REJECT_UNAUTHORIZED": "0"}
        return process, None

    def run(
        self, scenario: str, environment: str, python: str, *, no_proxy: str = ""
    ) -> Observation:
        """Run *scenario* with *python* in *environment*; classify every connection it made."""
        process, source = self.environment(environment, no_proxy=no_proxy)
        for tap in self.taps:
            tap.clear()
        self.dns.take()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.directory / "home"),
            "PYTHONPATH": str(REPO),
            "LANG": "C.UTF-8",
            TASK: json.dumps({"scenario": scenario, "config": source}),
            **process,
        }
        command = ["unshare", "-m", "sh", "-c", _MOUNT, "sh"]
        command += [str(self.directory / "hosts"), str(self.directory / "resolv.conf")]
        command += [python, "-m", "tests.warehouses.scenarios"]
        done = subprocess.run(
            command, env=env, cwd=REPO, capture_output=True, text=True, timeout=_SCENARIO_TIMEOUT
        )
        lines = done.stdout.strip().splitlines()
        try:
            outcome = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            outcome = {"ok": False, "error": "crashed", "message": done.stderr[-3000:]}
        for tap in self.taps:
            tap.settle()
        config = ProxyConfig.from_env(environ=process if source is None else source)
        return self._observe(scenario, environment, outcome, config, no_proxy)

    def _observe(
        self,
        scenario: str,
        environment: str,
        outcome: dict[str, Any],
        config: ProxyConfig,
        no_proxy: str,
    ) -> Observation:
        warehouse = Warehouse.SNOWFLAKE if scenario.startswith("snowflake") else None
        connections, proxies = [], {CONFIG_PROXY_NAME: 0, ENV_PROXY_NAME: 0}
        for tap in self.taps:
            for connection in tap.connections():
                proxy = self._proxy_of.get((tap.address, tap.port))
                if proxy is not None:
                    proxies[proxy] += 1
                    continue
                host = self._host_of[(tap.address, tap.port)]
                connections.append((connection, _expected(config, host, warehouse)))
        python = [self._label(address) for address in map(tuple, outcome.pop("connects", []))]
        dns = self.dns.take()
        return Observation(
            scenario, environment, outcome, config, connections, proxies, dns, python, no_proxy
        )

    def _label(self, address: tuple[Any, ...]) -> str:
        where = (str(address[0]), int(address[1]))
        if where in self._proxy_of:
            return f"{self._proxy_of[where]}:{where[1]}"
        host = self._host_of.get(where)
        return f"{DIRECT} {host.name}:{host.port}" if host else f"{DIRECT} {where[0]}:{where[1]}"


def _expected(config: ProxyConfig, host: Host, warehouse: Warehouse | None) -> str:
    if host.kind == "grpc":
        route = config.route(f"{host.name}:{host.port}", protocol=Protocol.GRPC)
    else:
        route = config.route(f"{host.kind}://{host.name}:{host.port}", warehouse=warehouse)
    return VIA_CONFIG if route.action is Action.PROXY else DIRECT


@contextlib.contextmanager
def start_lab(pki: PKI, directory: Path) -> Iterator[Lab]:
    """Start the stand-ins, the taps, both Squids and the DNS logger; stop them all on exit."""
    (directory / "home").mkdir(parents=True, exist_ok=True)
    hosts = {**NAMES, CONFIG_PROXY_NAME: CONFIG_PROXY_IP, ENV_PROXY_NAME: ENV_PROXY_IP}
    lines = [f"{address} {name}" for name, address in hosts.items()]
    (directory / "hosts").write_text("127.0.0.1 localhost\n" + "\n".join(lines) + "\n")
    (directory / "resolv.conf").write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
    leaf = pki.proxy_ca.issue_cert(CONFIG_PROXY_NAME, "localhost", "127.0.0.1")
    cert, key = directory / "my-proxy.pem", directory / "my-proxy.key"
    for index, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(cert), append=index > 0)
    leaf.private_key_pem.write_to_path(str(key))
    pooling = "server_persistent_connections off"  # one upstream connection per request
    with contextlib.ExitStack() as stack:
        stack.enter_context(metadata_address())
        standins = stack.enter_context(start_standins(pki))
        config_squid = Squid(
            tls_cert=cert,
            tls_key=key,
            hosts=NAMES,
            extra_config=[f"tcp_outgoing_address {CONFIG_SOURCE}", pooling],
        )
        env_squid = Squid(hosts=NAMES, extra_config=[f"tcp_outgoing_address {ENV_SOURCE}", pooling])
        for squid in (config_squid, env_squid):
            stack.enter_context(squid)
        taps = [
            Tap(host.name, host.address, host.port, standins.backends[host.backend])
            for host in HOSTS
        ]
        taps += [
            Tap(CONFIG_PROXY_NAME, CONFIG_PROXY_IP, 3128, ("127.0.0.1", config_squid.http_port)),
            Tap(CONFIG_PROXY_NAME, CONFIG_PROXY_IP, 3129, ("127.0.0.1", config_squid.https_port)),
            Tap(ENV_PROXY_NAME, ENV_PROXY_IP, 3128, ("127.0.0.1", env_squid.http_port)),
        ]
        for tap in taps:
            stack.callback(tap.stop)
        dns = DNSLog()
        stack.callback(dns.stop)
        yield Lab(pki, directory, taps, dns)
