"""BigQuery clients whose REST calls, token refreshes and Storage API reads follow the routing.

Three paths leave a BigQuery client, and by default each picks its own proxy:

* REST (``bigquery.googleapis.com``): :func:`client` sends it through
  :mod:`carto_proxy.adapters.requests` (routing, proxy-hop TLS, CA bundle).
* Token refresh (``oauth2.googleapis.com``, the metadata server…): google-auth refreshes with a
  ``requests.Session`` of its own that reads only the environment (googleapis/nodejs-bigquery#1021
  is the same trap in Node). Both clients pass a routed session as ``auth_request``. The
  metadata-server side calls google-auth and google-cloud-core make with environment-only
  requests are made routed too: Compute Engine credentials' ``universe_domain`` lookup (which
  ``bigquery.Client`` triggers) and the project discovery of ``credentials=`` without
  ``project=``.
* The Storage Read API (gRPC, ``bigquerystorage.googleapis.com:443``): BigQuery creates Storage
  clients with default channels, which read only the environment (googleapis/python-bigquery
  #1370). :func:`read_client` builds one on :func:`carto_proxy.adapters.grpc.secure_channel`,
  and the client :func:`client` returns creates its implicit Storage clients the same way.

gRPC cannot speak TLS to a proxy, so under an ``https://`` proxy the Storage API could only go
direct. CARTO documents that all BigQuery traffic goes through the proxy, so then the default is
REST only: :func:`client` never creates a Storage client implicitly (query results are paged over
REST) and :func:`read_client` raises :class:`~carto_proxy.ConfigError`; ``allow_direct=True``
accepts the direct gRPC connection instead.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from carto_proxy._config import ProxyConfig
from carto_proxy._routing import Route, Rule
from carto_proxy._target import Protocol
from carto_proxy._warehouses import Warehouse
from carto_proxy.adapters import requests as routed_requests
from carto_proxy.adapters._common import (
    import_extra,
    refuse_arguments,
    report_route,
    resolve_config,
)
from carto_proxy.exceptions import ConfigError, MissingExtraError

bigquery = import_extra("google.cloud.bigquery", "bigquery")
google_auth = import_extra("google.auth", "bigquery")
ga_credentials = import_extra("google.auth.credentials", "bigquery")
auth_requests = import_extra("google.auth.transport.requests", "bigquery")
client_options_lib = import_extra("google.api_core.client_options", "bigquery")
compute_engine = import_extra("google.auth.compute_engine", "bigquery")
# google-auth's metadata-server client: the one lookup its credentials make unrouted.
gce_metadata = import_extra("google.auth.compute_engine._metadata", "bigquery")

__all__ = ["STORAGE_HOST", "auth_request", "client", "read_client"]

STORAGE_HOST = "bigquerystorage.googleapis.com"
"""The BigQuery Storage API's gRPC endpoint (port 443)."""

_REFUSED = ("_http",)
_HTTP_FIX = "remove it: carto_proxy builds the routed, authorized session itself"
# BigQuery's own keepalive for the channels of its Storage clients (google-cloud-python#18784).
_KEEPALIVE = (("grpc.keepalive_time_ms", 5 * 60 * 1000), ("grpc.keepalive_timeout_ms", 60 * 1000))


def auth_request(config: ProxyConfig | None = None) -> Any:
    """Return a ``google.auth.transport.requests.Request`` whose requests are routed.

    Pass it wherever google-auth takes a ``request`` (``credentials.refresh(request)``,
    ``AuthorizedSession(auth_request=...)``, ``google.auth.default(request=...)``) so that token
    refreshes and metadata-server calls follow the configuration instead of the environment.
    """
    return auth_requests.Request(session=routed_requests.session(config))


def client(
    config: ProxyConfig | None = None,
    *,
    project: str | None = None,
    credentials: Any = None,
    allow_direct: bool = False,
    **kwargs: Any,
) -> Any:
    """Return a ``google.cloud.bigquery.Client`` whose every request follows *config*.

    REST calls and token refreshes go through :mod:`carto_proxy.adapters.requests`; Storage API
    clients the BigQuery client creates by itself (``to_arrow``, ``to_dataframe``, DB-API) are
    built like :func:`read_client`. Under an ``https://`` proxy none is created (REST paging),
    unless *allow_direct*.

    Args:
        config: the configuration; ``None`` reads :meth:`ProxyConfig.from_env`.
        project: the billing project; default: the credentials' or ADC's.
        credentials: google-auth credentials; default: Application Default Credentials, found
            with routed requests (set ``project`` too, or ADC's project is used).
        allow_direct: let implicit Storage clients connect direct when gRPC cannot use the proxy.
        **kwargs: ``bigquery.Client`` arguments (``location``, ``client_options``,
            ``default_query_job_config``…); ``_http`` is refused.

    Raises:
        ConfigError: ``_http`` is given.
    """
    refuse_arguments(kwargs, _REFUSED, adapter="bigquery.client", fix=_HTTP_FIX)
    config = resolve_config(config)
    request = auth_request(config)
    options = _client_options(kwargs.pop("client_options", None))
    if credentials is None and not (options.api_key or options.credentials_file):
        credentials, default_project = google_auth.default(
            scopes=bigquery.Client.SCOPE, request=request
        )
        project = project or default_project
    credentials = _with_universe_domain(credentials, request)
    return _client_class()(
        project=project,
        credentials=credentials,
        client_options=options,
        carto_proxy_config=config,
        carto_proxy_auth_request=request,
        carto_proxy_allow_direct=allow_direct,
        **kwargs,
    )


def read_client(
    config: ProxyConfig | None = None,
    *,
    credentials: Any = None,
    allow_direct: bool = False,
    channel_options: Sequence[tuple[str, Any]] = (),
    **kwargs: Any,
) -> Any:
    """Return a ``bigquery_storage.BigQueryReadClient`` whose channel follows *config*.

    The channel is :func:`carto_proxy.adapters.grpc.secure_channel`: it dials the proxy itself
    (no environment variable can change the route) and trusts gRPC's roots plus
    ``NODE_EXTRA_CA_CERTS``. Call credentials refresh through :func:`auth_request`.

    Args:
        config: the configuration; ``None`` reads :meth:`ProxyConfig.from_env`.
        credentials: google-auth credentials; default: Application Default Credentials.
        allow_direct: accept a direct connection when the proxy is ``https://`` (gRPC cannot
            use it); the network must then allow egress to the Storage endpoint.
        channel_options: more gRPC channel arguments.
        **kwargs: ``BigQueryReadClient`` arguments (``client_options``, ``client_info``);
            ``transport`` is refused.

    Raises:
        ConfigError: the proxy is ``https://`` and *allow_direct* is false; or ``transport``
            is given.
    """
    storage = import_extra("google.cloud.bigquery_storage_v1", "bigquery")
    refuse_arguments(
        kwargs,
        ("transport",),
        adapter="bigquery.read_client",
        fix=_HTTP_FIX.replace("session", "channel"),
    )
    config = resolve_config(config)
    options = _client_options(kwargs.pop("client_options", None))
    route = storage_route(config, options.api_endpoint or STORAGE_HOST)
    if route.rule is Rule.GRPC_HTTPS_UNSUPPORTED and not allow_direct:
        raise _https_proxy_error(route)
    request = auth_request(config)
    if credentials is None and not (options.api_key or options.credentials_file):
        credentials, _ = google_auth.default(
            default_scopes=storage.BigQueryReadClient.get_transport_class("grpc").AUTH_SCOPES,
            request=request,
        )
    credentials = _with_universe_domain(credentials, request)
    transport = functools.partial(
        _transport, storage, config, request, (*_KEEPALIVE, *channel_options)
    )
    return storage.BigQueryReadClient(
        credentials=credentials, client_options=options, transport=transport, **kwargs
    )


def _with_universe_domain(credentials: Any, request: Any) -> Any:
    """Return *credentials* with their universe domain known, looked up with *request*.

    Compute Engine credentials fetch it from the metadata server the first time it is read,
    with an environment-only request of their own (google-auth ``compute_engine/credentials.py``);
    ``bigquery.Client`` and the Storage client read it when they are built. Other credentials
    know it already and are returned as they are.
    """
    if not isinstance(credentials, compute_engine.Credentials) or getattr(
        credentials, "_universe_domain_cached", True
    ):
        return credentials
    return credentials.with_universe_domain(gce_metadata.get_universe_domain(request))


def storage_route(config: ProxyConfig, endpoint: str) -> Route:
    """Route the Storage API *endpoint* (``host[:port]``, port 443 by default) as gRPC."""
    return report_route(
        config, endpoint, adapter="bigquery", protocol=Protocol.GRPC, warehouse=Warehouse.BIGQUERY
    )


def _client_options(value: Any) -> Any:
    """``client_options`` as given (a dict or ``ClientOptions``) as ``ClientOptions``."""
    if value is None or isinstance(value, dict):
        return client_options_lib.from_dict(value or {})
    return value


def _https_proxy_error(route: Route) -> ConfigError:
    return ConfigError(
        route.variable or "HTTPS_PROXY",
        None,
        "the BigQuery Storage API speaks gRPC, which cannot use an https:// proxy, so it would "
        f"connect directly to {route.target.authority} instead of through the proxy",
        "read results over REST (adapters.bigquery.client does so by default under an https:// "
        "proxy), or pass allow_direct=True if the network allows direct egress to "
        f"{route.target.authority}",
        code="CP400",
    )


def _transport(
    storage: Any,
    config: ProxyConfig,
    request: Any,
    channel_options: Sequence[tuple[str, Any]],
    **kwargs: Any,
) -> Any:
    """Build the gRPC transport of a read client; called by ``BigQueryReadClient``."""
    transport_class = storage.BigQueryReadClient.get_transport_class("grpc")
    channel = functools.partial(_channel, transport_class, config, request, channel_options)
    return transport_class(channel=channel, **kwargs)


def _channel(
    transport_class: Any,
    config: ProxyConfig,
    request: Any,
    extra_options: Sequence[tuple[str, Any]],
    host: str,
    *,
    credentials: Any = None,
    scopes: Sequence[str] | None = None,
    ssl_credentials: Any = None,
    quota_project_id: str | None = None,
    options: Sequence[tuple[str, Any]] = (),
    **_: Any,
) -> Any:
    """Build the channel a read transport asks for; what ``api_core.create_channel`` does,
    except that the channel is routed and call credentials refresh through *request*
    (``api_core`` would refresh with a fresh, environment-only ``requests`` session)."""
    from carto_proxy.adapters import grpc as routed_grpc

    grpc = import_extra("grpc", "bigquery")
    auth_grpc = import_extra("google.auth.transport.grpc", "bigquery")
    credentials = ga_credentials.with_scopes_if_required(
        credentials, scopes=scopes, default_scopes=transport_class.AUTH_SCOPES
    )
    if quota_project_id and isinstance(credentials, ga_credentials.CredentialsWithQuotaProject):
        credentials = credentials.with_quota_project(quota_project_id)
    plugin = auth_grpc.AuthMetadataPlugin(
        credentials, request, default_host=transport_class.DEFAULT_HOST
    )
    channel_credentials = grpc.composite_channel_credentials(
        ssl_credentials or routed_grpc.ssl_credentials(config),
        grpc.metadata_call_credentials(plugin),
    )
    return routed_grpc.secure_channel(config, host, channel_credentials, [*options, *extra_options])


@functools.cache
def _client_class() -> type[Any]:
    """Build the ``bigquery.Client`` subclass that routes its session and Storage clients."""
    base: type[Any] = bigquery.Client

    class RoutedClient(base):  # type: ignore[misc]
        """A BigQuery client whose REST session and Storage clients follow a ProxyConfig."""

        def __init__(
            self,
            *args: Any,
            carto_proxy_config: ProxyConfig,
            carto_proxy_auth_request: Any,
            carto_proxy_allow_direct: bool,
            **kwargs: Any,
        ) -> None:
            self._carto_proxy_config = carto_proxy_config
            self._carto_proxy_auth_request = carto_proxy_auth_request
            self._carto_proxy_allow_direct = carto_proxy_allow_direct
            super().__init__(*args, **kwargs)

        def _determine_default(self, project: str | None) -> str | None:
            # google-cloud-core finds the project of credentials= without project= with
            # google.auth.default(), whose metadata-server calls read only the environment.
            if project is None:
                _, project = google_auth.default(request=self._carto_proxy_auth_request)
            return project

        @property
        def _http(self) -> Any:
            # google-cloud-core builds AuthorizedSession(credentials) here, whose token refresh
            # uses an environment-only session: route both the calls and the refresh.
            session: Any = getattr(self, "_http_internal", None)
            if session is None:
                session = auth_requests.AuthorizedSession(
                    self._credentials, auth_request=self._carto_proxy_auth_request
                )
                routed_requests.mount(session, self._carto_proxy_config)
                self._http_internal = session
            return session

        def _ensure_bqstorage_client(self, bqstorage_client: Any = None, **kwargs: Any) -> Any:
            if bqstorage_client is None:
                options = kwargs.get("client_options")
                endpoint = getattr(options, "api_endpoint", None) or STORAGE_HOST
                route = storage_route(self._carto_proxy_config, endpoint)
                if route.rule is Rule.GRPC_HTTPS_UNSUPPORTED and not self._carto_proxy_allow_direct:
                    return None  # REST paging: every byte stays on the proxy
                if options is None and self._universe_domain != "googleapis.com":
                    options = client_options_lib.ClientOptions(
                        universe_domain=self._universe_domain
                    )
                try:
                    bqstorage_client = read_client(
                        self._carto_proxy_config,
                        credentials=self._credentials,
                        allow_direct=True,
                        client_options=options,
                    )
                except MissingExtraError:
                    return None  # as BigQuery does without the Storage package: REST paging
            kwargs.pop("transport", None)  # ours is already built
            return super()._ensure_bqstorage_client(bqstorage_client, **kwargs)

        def _get_shared_bqstorage_client(self) -> Any:
            route = storage_route(self._carto_proxy_config, STORAGE_HOST)
            if route.rule is Rule.GRPC_HTTPS_UNSUPPORTED and not self._carto_proxy_allow_direct:
                raise _https_proxy_error(route)
            return super()._get_shared_bqstorage_client()

    return RoutedClient
