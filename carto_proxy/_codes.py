"""Every diagnostic code carto_proxy uses, with its severity and where it is documented.

One table, so that a code is defined once: :class:`~carto_proxy.ConfigError` carries a code from
it, ``check()`` and the portability lint take each finding's severity from it, and the suite
holds it against the source and the documentation. A code never changes meaning.

Groups: ``CP1xx`` proxy variables, ``CP2xx`` NO_PROXY, ``CP3xx`` TLS, ``CP4xx`` adapters,
``CP5xx`` portability (how other tools read the same values).
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = ["CODES", "Code", "Severity"]


class Severity(str, enum.Enum):
    """How bad a finding is. ``error``: refused or cannot work; ``warning``: works here but
    is risky or read differently by other tools; ``info``: worth knowing."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    def __str__(self) -> str:
        return self.value


class Code(NamedTuple):
    """One code: its severity, a short title, and the documentation page it is on."""

    severity: Severity
    title: str
    page: str = "diagnostics"

    def anchor(self, code: str) -> str:
        """The documentation link of *code*, e.g. ``diagnostics.html#cp106``."""
        return f"{self.page}.html#{code.lower()}"


_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO

CODES: dict[str, Code] = {
    "CP100": Code(_E, "a source cannot be read"),
    "CP101": Code(_E, "a mandatory proxy variable is missing"),
    "CP102": Code(_W, "only one case is set"),
    "CP103": Code(_W, "the two cases differ"),
    "CP104": Code(_W, "a proxy URL has no scheme"),
    "CP105": Code(_W, "a proxy URL has no port"),
    "CP106": Code(_E, "the proxy URL holds credentials"),
    "CP107": Code(_E, "the proxy URL is not valid"),
    "CP108": Code(_W, "gRPC would use an HTTPS proxy"),
    "CP109": Code(_I, "ALL_PROXY is set"),
    "CP110": Code(_W, "HTTP_PROXY ignored under CGI"),
    "CP111": Code(_W, "a variable is set but blank"),
    "CP112": Code(_E, "a Helm value is unusable"),
    "CP113": Code(_I, "no proxy is configured"),
    "CP201": Code(_W, "a NO_PROXY entry is ignored"),
    "CP202": Code(_W, "Snowflake is not excluded with an HTTPS proxy"),
    "CP203": Code(_I, "NO_PROXY contains *"),
    "CP204": Code(_I, "NO_GRPC_PROXY replaces NO_PROXY for gRPC"),
    "CP205": Code(_W, "the metadata server is not excluded"),
    "CP206": Code(_W, "a CIDR block matches more than it says"),
    "CP301": Code(_W, "the proxy's certificate is not verified"),
    "CP302": Code(_I, "NODE_TLS_REJECT_UNAUTHORIZED=0 has no effect"),
    "CP303": Code(_I, "the extra CA only verifies origins"),
    "CP304": Code(_W, "custom CA with an HTTPS proxy"),
    "CP305": Code(_E, "the CA certificates cannot be used"),
    "CP306": Code(_E, "NODE_TLS_REJECT_UNAUTHORIZED is not 0 or 1"),
    "CP307": Code(_I, "the CA file is checked elsewhere"),
    "CP400": Code(_E, "an adapter argument would bypass the routing"),
    "CP401": Code(_E, "urllib3 is too old for an HTTPS proxy"),
    "CP402": Code(_E, "a driver's own client would not follow the route"),
    "CP403": Code(_E, "Python is too old for aiohttp through an HTTPS proxy"),
    "CP501": Code(_W, "*.example.com entry", "cli"),
    "CP502": Code(_I, ".example.com entry and the domain itself", "cli"),
    "CP503": Code(_I, "example.com entry and subdomains", "cli"),
    "CP504": Code(_W, "entry with a port", "cli"),
    "CP505": Code(_W, "IPv4 CIDR block", "cli"),
    "CP506": Code(_W, "IPv6 CIDR block", "cli"),
    "CP507": Code(_W, "bare IPv6 address", "cli"),
    "CP508": Code(_W, "bracketed IPv6 address", "cli"),
    "CP509": Code(_W, "*", "cli"),
    "CP510": Code(_W, "trailing dot", "cli"),
    "CP511": Code(_W, "non-ASCII entry", "cli"),
    "CP512": Code(_W, "entry with spaces", "cli"),
    "CP523": Code(_W, "spaces around a proxy URL", "cli"),
    "CP525": Code(_W, "https:// proxy", "cli"),
    "CP530": Code(_W, ".svc.cluster.local not excluded", "cli"),
    "CP532": Code(_I, "localhost not excluded", "cli"),
}
"""Every code, in order."""
