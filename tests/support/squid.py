"""A real Squid on 127.0.0.1, run as a subprocess with its own configuration and logs.

Squid never does real DNS here: test names come from a generated ``hosts_file`` and the only
name server is 127.0.0.1 (nothing answers; lookups of other names fail after ~1 s with 502/503).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, NoReturn
from urllib.parse import unquote

import pytest

from tests.support.names import LOOPBACK, TEST_HOSTS
from tests.support.polling import first_match

SQUID_ENV: Final = "CARTO_PROXY_TEST_SQUID"
"""Environment variable naming the squid binary to use instead of searching for one."""

_START_TIMEOUT: Final = 15.0
_STOP_TIMEOUT: Final = 10.0
_START_ATTEMPTS: Final = 3
_POLL: Final = 0.02

# One space-separated line per transaction; every field is URL-encoded by Squid (%#) or cannot
# contain spaces, and %ru is last so it may be split off with maxsplit.
#   %tS      transaction start (seconds.millis), used to ignore older transactions
#   %>a      client IP          %>lp  Squid port the client connected to (plain or TLS)
#   %Ss      Squid result code (TCP_TUNNEL, TCP_MISS, TCP_DENIED, ...)
#   %03>Hs   status sent to the client (000 when none)
#   %rm      method             %>rd  host (CONNECT authority or URL host)   %>rP port
#   %<a      server IP Squid connected to ("-" when none)
#   %#{Host}>h  Host header from the client ("-" when absent)
#   %ru      request target: absolute URL, or host:port for CONNECT
_LOGFORMAT: Final = "%tS %>a %>lp %Ss %03>Hs %rm %#>rd %>rP %<a %#{Host}>h %ru"


def find_squid() -> str | None:
    """Return the path of a squid binary (``$CARTO_PROXY_TEST_SQUID``, PATH, sbin), or None."""
    for candidate in (
        os.environ.get(SQUID_ENV),
        shutil.which("squid"),
        "/usr/sbin/squid",
        "/usr/local/sbin/squid",
        "/opt/homebrew/sbin/squid",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def unavailable(reason: str) -> NoReturn:
    """Skip the current test, or fail it when ``CI=true`` (CI must not skip silently)."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (CI=true: integration tests must run)")
    pytest.skip(reason)


def squid_binary(*, tls: bool = True) -> str:
    """Return the squid binary to use; skip (fail on CI) if missing or, with ``tls``, TLS-less."""
    binary = find_squid()
    if binary is None:
        unavailable(f"squid not found (install squid-openssl, or set {SQUID_ENV})")
    if tls and not squid_supports_tls(binary):
        unavailable(f"{binary} has no TLS support (https_port); install squid-openssl")
    return binary


def squid_supports_tls(binary: str) -> bool:
    """Return whether ``squid -v`` shows a build with OpenSSL or GnuTLS."""
    try:
        out = subprocess.run(
            [binary, "-v"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--with-openssl" in out or "--with-gnutls" in out


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessLogEntry:
    """One parsed access.log line."""

    start: float
    """Transaction start time (seconds since the epoch)."""
    client: str
    listener_port: int
    """The Squid port the client used: compare with ``Squid.http_port`` / ``https_port``."""
    result: str
    """Squid's result code: ``TCP_TUNNEL`` (CONNECT), ``TCP_MISS``, ``TCP_DENIED``, ..."""
    status: int
    """HTTP status Squid sent to the client; 0 when it sent none."""
    method: str
    host: str
    """Lowercased target host without brackets; ``""`` when unknown."""
    port: int | None
    server: str | None
    """IP address Squid connected to upstream, if it connected."""
    host_header: str | None
    target: str
    """The request target: absolute URL for forward requests, ``host:port`` for CONNECT."""

    @property
    def authority(self) -> str:
        """``host:port`` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port is not None else host

    @property
    def is_connect(self) -> bool:
        """Whether this is a CONNECT tunnel."""
        return self.method == "CONNECT"

    @classmethod
    def parse(cls, line: str) -> AccessLogEntry:
        """Parse one line written with this module's logformat."""
        fields = line.rstrip("\n").split(" ", 10)
        if len(fields) != 11:
            raise ValueError(f"unexpected access.log line: {line!r}")
        start, client, lport, result, status, method, host, port, server, host_hdr, target = fields
        host = unquote(host).lower()
        if host == "-":
            host = ""
        elif host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(
            start=float(start),
            client=client,
            listener_port=int(lport),
            result=result,
            status=int(status),
            method=method,
            host=host,
            port=int(port) if port.isdigit() else None,
            server=None if server == "-" else server,
            host_header=None if host_hdr == "-" else unquote(host_hdr),
            target=target,
        )


class SquidLog:
    """A view of a Squid access.log from a byte offset and a start time on.

    Entries of transactions that started before the view was created are hidden, even if Squid
    logs them later (a CONNECT is logged only when its tunnel closes).
    """

    def __init__(self, path: Path, *, offset: int = 0, since: float = 0.0) -> None:
        self.path = path
        self.offset = offset
        self.since = since

    @classmethod
    def at_end(cls, path: Path) -> SquidLog:
        """Return a view that starts now: only later transactions will be in it."""
        view = cls(path)
        view.mark()
        return view

    def mark(self) -> None:
        """Move the view to the end of the log and to now (a ``clear`` that keeps the file)."""
        # Squid logs %tS with millisecond precision; truncate "now" the same way.
        self.since = int(time.time() * 1000) / 1000
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def lines(self) -> list[str]:
        """Return the complete raw lines after the offset (a partial last line is left out)."""
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                data = log.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        return complete.decode("utf-8", "replace").splitlines()

    def entries(self) -> list[AccessLogEntry]:
        """Return the parsed entries in this view, in log order."""
        parsed = (AccessLogEntry.parse(line) for line in self.lines() if line.strip())
        return [entry for entry in parsed if entry.start >= self.since]

    def seen(self, host: str, *, method: str | None = None) -> list[AccessLogEntry]:
        """Return the entries for ``host`` (and ``method``, if given)."""
        wanted = host.strip().strip("[]").lower()
        return [
            e
            for e in self.entries()
            if e.host == wanted and (method is None or e.method == method.upper())
        ]

    def wait_for(
        self,
        predicate: Callable[[AccessLogEntry], bool],
        timeout: float = 5.0,
        *,
        what: str = "matching entry",
    ) -> AccessLogEntry:
        """Poll until an entry matches ``predicate``; raise ``AssertionError`` after ``timeout``.

        Squid writes a line when a transaction ends, so close the client connection (or finish
        the tunnel) before waiting for it.
        """

        def failure() -> str:
            shown = "\n  ".join(self.lines()) or "(empty)"
            return f"no {what} in {self.path} within {timeout}s; view has:\n  {shown}"

        return first_match(self.entries, predicate, timeout, failure=failure, interval=_POLL)

    def wait_for_host(
        self, host: str, *, method: str | None = None, timeout: float = 5.0
    ) -> AccessLogEntry:
        """Wait for an entry for ``host`` (and ``method``); return it."""
        wanted = host.strip().strip("[]").lower()
        return self.wait_for(
            lambda e: e.host == wanted and (method is None or e.method == method.upper()),
            timeout,
            what=f"{method or 'any'} entry for {wanted!r}",
        )


class Squid:
    """A real Squid listening on 127.0.0.1 (plain, and TLS when given a certificate).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Runs ``squid -N`` so the
    subprocess PID is Squid itself. Configuration, logs and copies of the TLS files live in a
    private temporary directory that :meth:`stop` removes (unless ``keep_files``).
    """

    def __init__(
        self,
        *,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        hosts: Mapping[str, str] = TEST_HOSTS,
        deny_domains: Sequence[str] = (),
        upstream_cafile: Path | None = None,
        extra_config: Iterable[str] = (),
        binary: str | None = None,
        keep_files: bool = False,
    ) -> None:
        """Describe a Squid; nothing runs until :meth:`start`.

        Args:
            tls_cert: Certificate (chain) PEM for the ``https_port`` listener; with ``tls_key``.
            tls_key: Its private key.
            hosts: Squid's hosts_file: name → IP; ``localhost`` is always added.
            deny_domains: ``dstdomain`` values refused with 403 (``.example.test`` also
                matches subdomains).
            upstream_cafile: CA Squid trusts for ``GET https://...`` sent to it in absolute form.
            extra_config: Lines appended to squid.conf.
            binary: Squid binary; default :func:`squid_binary` (skips or fails when missing).
            keep_files: Leave the temporary directory in place after :meth:`stop`.
        """
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.hosts = dict(hosts)
        self.deny_domains = tuple(deny_domains)
        self.upstream_cafile = upstream_cafile
        self.extra_config = tuple(extra_config)
        self.binary = binary
        self.keep_files = keep_files
        self.directory: Path | None = None
        self.http_port = 0
        self.https_port = 0
        self.log: SquidLog | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Squid:
        """Start Squid and wait (at most 15 s) until every listener accepts connections."""
        if self._process is not None:
            raise RuntimeError("Squid already started")
        binary = self.binary or squid_binary(tls=self.tls_cert is not None)
        # Not pytest's tmp_path: that sits under a 0700 directory the `proxy` user cannot
        # traverse when Squid drops root privileges.
        self.directory = Path(tempfile.mkdtemp(prefix="carto-proxy-squid-"))
        try:
            for attempt in range(1, _START_ATTEMPTS + 1):
                self.http_port = _free_port()
                self.https_port = _free_port() if self.tls else 0
                self._write_files()
                self._spawn(binary)
                if self._wait_ready(last_attempt=attempt == _START_ATTEMPTS):
                    break
        except BaseException:
            self.stop()
            raise
        self.log = SquidLog(self.access_log_path)
        return self

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """SIGTERM Squid, wait up to ``timeout`` (Squid 5 needs ~1-4 s), then SIGKILL."""
        process, self._process = self._process, None
        if process is not None:
            _terminate(process, timeout)
        if self.directory is not None and not self.keep_files:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Squid:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        """PID of the Squid process (it is Squid itself: ``-N``, no daemon, no workers)."""
        if self._process is None:
            raise RuntimeError("Squid is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the Squid process is still alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def tls(self) -> bool:
        """Whether this Squid has a TLS (``https_port``) listener."""
        return self.tls_cert is not None

    # -- addresses -----------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<port>``: the plain listener, as an HTTP(S)_PROXY value."""
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def https_url(self) -> str:
        """``https://localhost:<port>``: the TLS listener (its certificate names localhost)."""
        if not self.tls:
            raise RuntimeError("this Squid has no TLS listener (no tls_cert)")
        return f"https://localhost:{self.https_port}"

    # -- files and logs ------------------------------------------------------------------

    @property
    def _dir(self) -> Path:
        if self.directory is None:
            raise RuntimeError("Squid has not been started")
        return self.directory

    def _path(self, name: str) -> Path:
        return self._dir / name

    @property
    def access_log_path(self) -> Path:
        """The access.log Squid writes (format: see ``_LOGFORMAT`` / :class:`AccessLogEntry`)."""
        return self._path("access.log")

    @property
    def cache_log_path(self) -> Path:
        """Squid's cache.log (its diagnostics)."""
        return self._path("cache.log")

    @property
    def config_path(self) -> Path:
        """The generated squid.conf."""
        return self._path("squid.conf")

    def cache_log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of cache.log and Squid's stdout/stderr."""
        parts = []
        for name in ("cache.log", "squid.out"):
            with contextlib.suppress(OSError, RuntimeError):
                text = self._path(name).read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def _view(self) -> SquidLog:
        if self.log is None:
            raise RuntimeError("Squid has not been started")
        return self.log

    def log_view(self) -> SquidLog:
        """Return a new view holding only transactions that start from now on."""
        return SquidLog.at_end(self.access_log_path)

    def access_log(self) -> list[AccessLogEntry]:
        """Return the entries in this Squid's own view (everything since start or clear)."""
        return self._view().entries()

    def seen(self, host: str, *, method: str | None = None) -> list[AccessLogEntry]:
        """Return the own view's entries for ``host`` (and ``method``)."""
        return self._view().seen(host, method=method)

    def wait_for(
        self, predicate: Callable[[AccessLogEntry], bool], timeout: float = 5.0
    ) -> AccessLogEntry:
        """Poll the own view until an entry matches; see :meth:`SquidLog.wait_for`."""
        return self._view().wait_for(predicate, timeout)

    def clear_log(self) -> None:
        """Hide everything logged so far from the own view (the file is left intact)."""
        self._view().mark()

    # -- internals -----------------------------------------------------------------------

    def _config(self) -> str:
        directory = self._dir
        lines = [
            f"http_port {LOOPBACK}:{self.http_port}",
        ]
        if self.tls:
            lines.append(
                f"https_port {LOOPBACK}:{self.https_port}"
                f" tls-cert={directory / 'listener.pem'} tls-key={directory / 'listener.key'}"
            )
        if self.upstream_cafile is not None:
            lines.append(f"tls_outgoing_options cafile={directory / 'upstream-ca.pem'}")
        if os.geteuid() == 0:
            lines.append(f"cache_effective_user {_unprivileged_user()}")
        lines += [
            "visible_hostname carto-proxy-test-squid",
            f"pid_filename {directory / 'squid.pid'}",
            f"cache_log {directory / 'cache.log'}",
            f"coredump_dir {directory}",
            f"logformat carto_proxy {_LOGFORMAT}",
            # stdio: written by Squid itself, line by line (the default `daemon` module goes
            # through a helper process and lags).
            f"access_log stdio:{directory / 'access.log'} carto_proxy",
            "buffered_logs off",
            "strip_query_terms off",
            f"hosts_file {directory / 'hosts'}",
            # Nothing listens on 127.0.0.1:53: names outside hosts_file fail fast, offline.
            "dns_nameservers 127.0.0.1",
            "dns_timeout 1 seconds",
            "dns_retransmit_interval 1 seconds",
            "cache deny all",
            "cache_mem 0 MB",
            "shutdown_lifetime 0 seconds",
            "pinger_enable off",
            "netdb_filename none",
            "acl loopback src 127.0.0.0/8 ::1",
        ]
        if self.deny_domains:
            # -n: never reverse-resolve IP-literal targets to match names (no DNS here).
            lines.append(f"acl carto_proxy_denied dstdomain -n {' '.join(self.deny_domains)}")
            lines.append("http_access deny carto_proxy_denied")
        # No SSL_ports/Safe_ports rules: CONNECT to any port is allowed from loopback.
        lines += ["http_access allow loopback", "http_access deny all", *self.extra_config]
        return "\n".join(lines) + "\n"

    def _write_files(self) -> None:
        directory = self._dir
        for stale in ("cache.log", "access.log", "squid.out", "squid.pid"):
            (directory / stale).unlink(missing_ok=True)
        hosts = {"localhost": LOOPBACK, **self.hosts}
        self._path("hosts").write_text("".join(f"{ip} {name}\n" for name, ip in hosts.items()))
        if self.tls_cert is not None and self.tls_key is not None:
            # Copies, so the unprivileged Squid user can read them whatever their origin.
            shutil.copyfile(self.tls_cert, directory / "listener.pem")
            shutil.copyfile(self.tls_key, directory / "listener.key")
        if self.upstream_cafile is not None:
            shutil.copyfile(self.upstream_cafile, directory / "upstream-ca.pem")
        self.config_path.write_text(self._config())
        if os.geteuid() == 0:
            # Squid refuses to run as root and switches to cache_effective_user, which must be
            # able to write its logs and pid file here.
            user = pwd.getpwnam(_unprivileged_user())
            for path in (directory, *directory.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)

    def _spawn(self, binary: str) -> None:
        with self._path("squid.out").open("wb") as out:
            # Same process group as pytest on purpose: Ctrl-C reaches Squid too.
            self._process = subprocess.Popen(
                [binary, "-N", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
            )

    def _wait_ready(self, *, last_attempt: bool) -> bool:
        """Return True when ready, False on a port clash worth retrying; raise otherwise.

        Readiness comes from cache.log's "Accepting ... connections at ... local=IP:PORT"
        lines, not from a probe connection: a probe would leave an ``error:transaction-end-
        before-headers`` entry in access.log, logged at an unpredictable later moment.
        """
        process = self._process
        if process is None:
            raise RuntimeError("Squid was not spawned")
        address = re.escape(LOOPBACK)
        wanted = [rf"Accepting HTTP Socket connections at .* local={address}:{self.http_port}\b"]
        if self.tls:
            wanted.append(
                rf"Accepting HTTPS Socket connections at .* local={address}:{self.https_port}\b"
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            text = ""
            with contextlib.suppress(FileNotFoundError):
                text = self.cache_log_path.read_text(errors="replace")
            if all(re.search(pattern, text) for pattern in wanted):
                return True
            # Squid keeps running when a port is taken, so look for the bind error itself.
            clash = "Address already in use" in text
            exited = process.poll() is not None
            if clash or exited or time.monotonic() >= deadline:
                # A failed instance gets a short grace only: its state is of no interest.
                _terminate(process, timeout=1.0)
                self._process = None
                if clash and not last_attempt:
                    return False
                if clash:
                    reason = "a port was taken"
                elif exited:
                    reason = f"it exited with status {process.returncode}"
                else:
                    reason = f"not ready within {_START_TIMEOUT}s"
                raise RuntimeError(
                    f"Squid failed to start ({reason}); config {self.config_path}\n"
                    + self.cache_log_tail()
                )
            time.sleep(_POLL)

    def __repr__(self) -> str:
        state = f"pid={self._process.pid}" if self._process is not None else "stopped"
        ports = f"http={self.http_port}" + (f" https={self.https_port}" if self.tls else "")
        return f"<Squid {state} {ports}>"


def _free_port() -> int:
    # Squid binds the port itself: pick one the kernel considers free; a clash is retried.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _unprivileged_user() -> str:
    for name in ("proxy", "squid", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root, but no 'proxy', 'squid' or 'nobody' user for Squid")


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(5)
