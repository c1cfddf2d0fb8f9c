"""The databases event-log runs on, each behind one :class:`Backend`.

:func:`backend_for_dialect` and :func:`backend_for_url` are the only places
that map SQLAlchemy's dialect names to a backend. A backend's module is
imported the first time a database of its kind is used, so its driver
(asyncpg, asyncmy) is never imported for another database.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from typing import Any

from sqlalchemy.engine import URL, Dialect

from .._errors import MissingDriverError
from ._backend import Backend, BackendName, IndexOutcome, Listener, Partitions

__all__ = [
    "Backend",
    "BackendName",
    "IndexOutcome",
    "Listener",
    "Partitions",
    "backend_for_dialect",
    "backend_for_url",
    "backend_named",
]

# SQLAlchemy dialect name -> (backend, the module that implements it). MariaDB
# answers to "mysql" (mysql+asyncmy://) and "mariadb" (mariadb+asyncmy://).
_BACKENDS: dict[str, tuple[BackendName, str]] = {
    "sqlite": ("sqlite", "event_log.backends.sqlite"),
    "postgresql": ("postgresql", "event_log.backends.postgresql"),
    "mysql": ("mariadb", "event_log.backends.mariadb"),
    "mariadb": ("mariadb", "event_log.backends.mariadb"),
}
_SUPPORTED = (
    "sqlite+aiosqlite:///FILE, postgresql+asyncpg://USER@HOST/DB or mysql+asyncmy://USER@HOST/DB"
)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # an import hook refused it, or sys.modules holds None
        return False


@cache
def backend_named(dialect_name: str) -> Backend:
    """The backend serving SQLAlchemy dialect ``dialect_name``; ValueError for others."""
    try:
        _, module = _BACKENDS[dialect_name]
    except KeyError:
        raise ValueError(
            f"event-log does not support the {dialect_name!r} database; use {_SUPPORTED}"
        ) from None
    backend: Any = importlib.import_module(module).BACKEND
    assert isinstance(backend, Backend)
    return backend


def backend_for_dialect(dialect: Dialect) -> Backend:
    """The backend of an engine's or connection's dialect."""
    return backend_named(dialect.name)


def backend_for_url(url: URL) -> Backend:
    """The backend of ``url``, once its driver is known to be supported and installed.

    A driver event-log does not run on is a ``ValueError`` naming the ones it
    does; a supported driver that is not installed is a
    :class:`~event_log.MissingDriverError` naming the extra that installs it.
    """
    backend = backend_named(url.get_backend_name())
    driver = url.get_driver_name()
    if driver not in backend.drivers:
        choices = " or ".join(f"{backend.name}+{name}://" for name in backend.drivers)
        raise ValueError(
            f"event-log does not run on the {driver!r} driver of {url.get_backend_name()}: "
            f"use {choices}"
        )
    module = backend.drivers[driver]
    if not _installed(module):
        extra = backend.extra_for(driver)
        hint = f"pip install 'event-log[{extra}]'" if extra else f"pip install {module}"
        raise MissingDriverError(
            f"{url.get_backend_name()}+{driver}:// needs the {module} driver, which is not "
            f"installed: {hint}"
        )
    return backend
