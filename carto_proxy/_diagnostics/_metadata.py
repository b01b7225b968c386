"""The cloud metadata server behind a proxy (``CP205``).

On GCE, GKE, AWS and Azure, credentials and instance facts come from a link-local metadata
server (``169.254.169.254``, ``metadata.google.internal``). A proxy that receives such a request
asks *its own* metadata server: another machine's identity and tokens, or nothing at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from carto_proxy._routing import Action

from ._diagnostic import Diagnostic, finding

if TYPE_CHECKING:
    from carto_proxy._config import ProxyConfig

__all__ = ["METADATA_HOSTS", "metadata_findings"]

METADATA_HOSTS = ("169.254.169.254", "metadata", "metadata.google.internal")
"""The names google-auth and the warehouse drivers reach the metadata server by."""


def metadata_findings(config: ProxyConfig) -> Iterator[Diagnostic]:
    """Warn when a request to the metadata server would be sent to the proxy."""
    proxied = [
        host for host in METADATA_HOSTS if config.route(f"http://{host}").action is Action.PROXY
    ]
    if proxied:
        helm = config.sources is not None and config.sources.from_helm
        where = "externalProxy.excludedDomains" if helm else "NO_PROXY and no_proxy"
        yield finding(
            "CP205",
            "externalProxy.excludedDomains" if helm else "NO_PROXY",
            f"NO_PROXY does not exclude the metadata server ({', '.join(proxied)}), so requests "
            "to it go to the proxy, which answers with its own machine's identity and tokens, "
            "or not at all (Google credentials on GCE/GKE, Snowflake's platform detection).",
            f"add {','.join(proxied)} to {where}",
        )
