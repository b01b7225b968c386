"""A user's project for pytester runs of the plugin: strict pytest settings, a connector.

The connector is built on urllib3 and carto_proxy's core only, so the plugin is tested apart
from any adapter; ``examples/connector`` shows the same with the httpx adapter.
"""

from __future__ import annotations

import pytest

# A connector that follows carto_proxy's decision, and one that ignores the proxy entirely.
CONNECTOR = '''
import urllib3

from carto_proxy import Action, ProxyConfig


def fetch(url, config=None):
    """GET url the way CARTO's rules say: through the proxy or direct."""
    config = ProxyConfig.from_env() if config is None else config
    route = config.route(url)
    tls = {"ssl_context": config.ssl_context()}
    if route.action is Action.PROXY:
        if route.proxy.is_tls:
            tls["proxy_ssl_context"] = config.proxy_ssl_context()
        pool = urllib3.ProxyManager(str(route.proxy), **tls)
    else:
        pool = urllib3.PoolManager(**tls)
    with pool:
        return pool.request("GET", url, timeout=5, retries=False)


def fetch_ignoring_the_proxy(url, config=None):
    """GET url straight to the host: the bug the kit must catch."""
    config = ProxyConfig.from_env() if config is None else config
    with urllib3.PoolManager(ssl_context=config.ssl_context()) as pool:
        return pool.request("GET", url, timeout=5, retries=False)
'''

# Hypothesis' plugin imports hypothesis at the end of every session, and pytester's in-process
# runs roll sys.modules back afterwards: two seconds a run for nothing these tests need.
STRICT_INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider -p no:hypothesispytest
filterwarnings = error
timeout = 60
"""


def make_user(pytester: pytest.Pytester) -> pytest.Pytester:
    """Turn *pytester* into a user's project: strict pytest settings and ``connector.py``."""
    pytester.makeini(STRICT_INI)
    pytester.makepyfile(connector=CONNECTOR)
    return pytester
