"""Errors raised by carto_proxy.

Every error derives from :class:`CartoProxyError` and from the standard exception it means,
so callers can catch either::

    CartoProxyError
    ├── ConfigError(CartoProxyError, ValueError)        a variable or setting is unusable
    ├── TargetError(CartoProxyError, ValueError)        a target cannot be parsed
    └── MissingExtraError(CartoProxyError, ImportError) an optional dependency is missing

Messages never contain a proxy password: values are redacted before they are quoted.
"""

from __future__ import annotations

__all__ = ["CartoProxyError", "ConfigError", "MissingExtraError", "TargetError"]


class CartoProxyError(Exception):
    """Base class of every error carto_proxy raises."""


class ConfigError(CartoProxyError, ValueError):
    """A configuration value is refused.

    Args:
        variable: the variable or setting at fault, e.g. ``"HTTPS_PROXY"``.
        value: the offending value, already redacted (never a password).
        problem: what is wrong with it.
        fix: how to put it right.
        code: the diagnostic code ``check()`` reports for the same problem, e.g. ``"CP106"``.
    """

    def __init__(
        self, variable: str, value: str | None, problem: str, fix: str, *, code: str = "CP100"
    ) -> None:
        self.code = code
        self.variable = variable
        self.value = value
        self.problem = problem
        self.fix = fix
        shown = "" if value is None else f"={value!r}"
        super().__init__(f"{variable}{shown}: {problem}. Fix: {fix}")


class TargetError(CartoProxyError, ValueError):
    """A routing target (URL, ``host:port``, gRPC target, DSN) cannot be parsed.

    Args:
        target: the target as given, with any user information removed.
        problem: what is wrong with it.
    """

    def __init__(self, target: str, problem: str) -> None:
        self.target = target
        self.problem = problem
        super().__init__(f"cannot route {target!r}: {problem}")


class MissingExtraError(CartoProxyError, ImportError):
    """An adapter needs an optional dependency that is not installed.

    Args:
        extra: the name of the ``carto-proxy`` extra that brings the dependency.
        module: the module that failed to import.
    """

    def __init__(self, extra: str, module: str) -> None:
        self.extra = extra
        super().__init__(
            f"{module} is not installed; install it with: pip install 'carto-proxy[{extra}]'",
            name=module,
        )
