"""Integration-test harness: test PKI, local origin servers, a real Squid and a fake resolver.

Host names used by the harness live in :mod:`tests.support.names`; fixtures live in
:mod:`tests.support.conftest_plugin`.
"""
