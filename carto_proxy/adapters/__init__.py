"""Client adapters: each module builds one library's client from a :class:`ProxyConfig`.

Import the module you need (``from carto_proxy.adapters import httpx``); importing this
package imports no client library.
"""
