"""One SQLAlchemy engine (one connection pool) per datasource, and what goes wrong opening it.

A datasource is a name, a SQLAlchemy URL and a small options dict. :func:`get_engine` checks the
URL against the warehouses xngin can query, creates the engine on first use and caches it per
``(name, url)``, so every request for a datasource shares one pool. Failures to reach a warehouse
become :class:`xngin.errors.Unavailable` with the datasource's name and the driver's reason, with
the password taken out: messages travel to API clients and logs.

Supported URL schemes
---------------------
``duckdb:///path``, ``sqlite:///path``, ``postgresql+psycopg://`` (``postgresql://`` means
psycopg), ``clickhouse+native://host:9000/db`` (``clickhouse://`` means native) are installed and
tested. ``bigquery://``, ``snowflake://`` and ``redshift+...://`` work when their dialect package
is installed (the ``bigquery``, ``snowflake`` and ``redshift`` extras of xngin).

Options
-------
``pool_size``, ``max_overflow``, ``pool_timeout``, ``pool_recycle``, ``pool_pre_ping`` (pool
settings), ``connect_args`` (passed to the driver; PostgreSQL gets ``connect_timeout=10`` unless
given) and ``schema``: the schema (ClickHouse: database) holding the participant tables, made the
connection's default so that unqualified table names resolve there.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from xngin.dwh import dialects
from xngin.errors import InvalidInput, Unavailable

__all__ = [
    "SUPPORTED_BACKENDS",
    "ConnectionInfo",
    "check_connection",
    "connect",
    "datasource_name",
    "datasource_schema",
    "dispose_all",
    "ensure_dialect_available",
    "forget_engine",
    "get_engine",
]

# Backend name -> the package that provides its dialect when it is not bundled with xngin.
SUPPORTED_BACKENDS: dict[str, str | None] = {
    "duckdb": None,
    "sqlite": None,
    "postgresql": None,
    "clickhouse": None,
    "bigquery": "sqlalchemy-bigquery (pip install 'xngin[bigquery]')",
    "snowflake": "snowflake-sqlalchemy (pip install 'xngin[snowflake]')",
    "redshift": "sqlalchemy-redshift (pip install 'xngin[redshift]')",
}

# The driver a bare scheme means: the one xngin installs, not SQLAlchemy's historical default.
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "clickhouse": "clickhouse+native"}

_POOL_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "pool_size": int,
    "max_overflow": int,
    "pool_timeout": (int, float),
    "pool_recycle": int,
    "pool_pre_ping": bool,
}
_CONNECT_TIMEOUT_S = 10
_OPTION_NAMES = sorted([*_POOL_OPTIONS, "connect_args", "schema"])

# Custom execution options carried by every connection of a datasource engine.
_NAME_OPTION = "xngin_datasource"
_SCHEMA_OPTION = "xngin_schema"

_lock = threading.Lock()
_engines: dict[tuple[str, str], tuple[str, sa.Engine]] = {}


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """The outcome of a successful :func:`check_connection`."""

    datasource: str
    dialect: str
    server_version: str | None
    latency_ms: float


def _parse_url(url: str, *, name: str | None) -> sa.URL:
    who = f"datasource {name!r}: " if name else ""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        # The text may hold a password, so it is not repeated back.
        raise InvalidInput(
            f"{who}url is not a SQLAlchemy URL; expected dialect+driver://user:password@host/db, "
            "e.g. postgresql+psycopg://user@host:5432/warehouse or duckdb:///path/to/file.duckdb",
            field="url",
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise InvalidInput(
            f"{who}url scheme {parsed.drivername!r} is not a supported warehouse; "
            f"supported: {', '.join(SUPPORTED_BACKENDS)}",
            field="url",
        )
    if parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
    return parsed


def ensure_dialect_available(url: str, *, name: str | None = None) -> None:
    """Check that ``url`` names a supported warehouse whose dialect and driver are installed.

    Parameters
    ----------
    url : str
        A SQLAlchemy URL (secrets already resolved).
    name : str, optional
        The datasource's name, for the message.

    Raises
    ------
    xngin.errors.InvalidInput
        With ``field="url"`` when the URL does not parse, its scheme is not supported, or its
        dialect or driver package is missing (the message names the package to install).
    """
    parsed = _parse_url(url, name=name)
    _load_dialect(parsed, name=name)


def _load_dialect(parsed: sa.URL, *, name: str | None) -> None:
    backend = parsed.get_backend_name()
    who = f"datasource {name!r}: " if name else ""
    package = SUPPORTED_BACKENDS[backend]
    try:
        dialect_cls = parsed.get_dialect()
    except (sa.exc.NoSuchModuleError, ImportError) as exc:  # absent, or present but broken
        hint = f"install {package}" if package else "check the driver name in the URL scheme"
        raise InvalidInput(
            f"{who}the SQLAlchemy dialect for {parsed.drivername!r} is not installed; {hint}",
            field="url",
        ) from exc
    try:
        dialect_cls.import_dbapi()
    except ImportError as exc:
        raise InvalidInput(
            f"{who}the database driver for {parsed.drivername!r} is not installed "
            f"({exc.name or exc}); install it or choose another driver in the URL scheme",
            field="url",
        ) from exc


def _check_options(options: Mapping[str, Any], *, name: str, backend: str) -> None:
    for key, value in options.items():
        field = f"options.{key}"
        if key not in _OPTION_NAMES:
            raise InvalidInput(
                f"datasource {name!r}: unknown option {key!r}; "
                f"accepted: {', '.join(_OPTION_NAMES)}",
                field=field,
            )
        expected = _POOL_OPTIONS.get(key)
        if expected is not None and (
            not isinstance(value, expected) or (expected is int and isinstance(value, bool))
        ):
            raise InvalidInput(
                f"datasource {name!r}: option {key}={value!r} must be a "
                f"{'boolean' if expected is bool else 'number'}",
                field=field,
            )
        if key == "connect_args" and not isinstance(value, Mapping):
            raise InvalidInput(
                f"datasource {name!r}: option connect_args must be an object", field=field
            )
        if key == "schema":
            if not isinstance(value, str) or not value:
                raise InvalidInput(
                    f"datasource {name!r}: option schema={value!r} must be a non-empty string",
                    field=field,
                )
            if backend not in ("postgresql", "redshift", "duckdb", "clickhouse"):
                raise InvalidInput(
                    f"datasource {name!r}: option schema is not supported for {backend}; "
                    "put the schema (dataset) in the URL instead",
                    field=field,
                )


def _options_key(options: Mapping[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in options.items()))


def _set_default_schema(engine: sa.Engine, schema: str) -> None:
    """Make ``schema`` the default of every new connection (identifier quoted, not a value)."""
    quoted = engine.dialect.identifier_preparer.quote_identifier(schema)
    backend = engine.dialect.name

    @sa.event.listens_for(engine, "connect")
    def _use_schema(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if backend == "duckdb":
                cursor.execute(f"USE {quoted}")
            else:  # postgresql, redshift
                cursor.execute(f"SET search_path TO {quoted}")
        finally:
            cursor.close()
        if backend != "duckdb":
            # A SET inside the driver's implicit transaction would be undone by its rollback.
            dbapi_connection.commit()


def _create(name: str, parsed: sa.URL, options: Mapping[str, Any]) -> sa.Engine:
    backend = parsed.get_backend_name()
    _check_options(options, name=name, backend=backend)
    _load_dialect(parsed, name=name)
    schema = options.get("schema")
    if backend == "clickhouse" and schema:
        # A ClickHouse "schema" is a database; the native driver takes it from the URL.
        parsed = parsed.set(database=schema)
    kwargs: dict[str, Any] = {k: options[k] for k in _POOL_OPTIONS if k in options}
    connect_args = dict(options.get("connect_args") or {})
    if parsed.drivername == "postgresql+psycopg" and "connect_timeout" not in parsed.query:
        # libpq waits for the OS (minutes) on an unanswered host; /health should not.
        connect_args.setdefault("connect_timeout", _CONNECT_TIMEOUT_S)
    if connect_args:
        kwargs["connect_args"] = connect_args
    execution_options = {_NAME_OPTION: name, _SCHEMA_OPTION: schema}
    try:
        engine = sa.create_engine(parsed, execution_options=execution_options, **kwargs)
    except TypeError as exc:
        raise InvalidInput(
            f"datasource {name!r}: the options are not accepted by the {backend} engine ({exc})",
            field="options",
        ) from exc
    if schema and backend in ("postgresql", "redshift", "duckdb"):
        _set_default_schema(engine, schema)
    dialects.prepare_engine(engine)
    return engine


def get_engine(*, name: str, url: str, options: Mapping[str, Any] | None = None) -> sa.Engine:
    """The engine of datasource ``name``, created on first use and then shared.

    Parameters
    ----------
    name : str
        The datasource's name; used in error messages.
    url : str
        Its SQLAlchemy URL with secrets resolved.
    options : mapping, optional
        Pool settings, ``connect_args`` and ``schema`` (see the module documentation).

    Returns
    -------
    sqlalchemy.Engine
        One engine per ``(name, url)``; asking again with other options replaces it.

    Raises
    ------
    xngin.errors.InvalidInput
        When the URL or options are not acceptable (``field`` is ``url`` or ``options.<key>``).
    """
    opts = dict(options or {})
    key = (name, url)
    opts_key = _options_key(opts)
    with _lock:
        cached = _engines.get(key)
        if cached is not None and cached[0] == opts_key:
            return cached[1]
        engine = _create(name, _parse_url(url, name=name), opts)
        if cached is not None:
            cached[1].dispose()
        _engines[key] = (opts_key, engine)
        return engine


def forget_engine(*, name: str) -> None:
    """Close and drop the cached engines of datasource ``name`` (it changed or was deleted)."""
    with _lock:
        for key in [k for k in _engines if k[0] == name]:
            _engines.pop(key)[1].dispose()


def dispose_all() -> None:
    """Close every cached engine's pool (at shutdown, and between tests)."""
    with _lock:
        for _, engine in _engines.values():
            engine.dispose()
        _engines.clear()


def datasource_name(engine: sa.Engine) -> str:
    """The datasource name an engine was created for, or its URL's backend for other engines."""
    name = engine.get_execution_options().get(_NAME_OPTION)
    return str(name) if name else engine.url.get_backend_name()


def datasource_schema(engine: sa.Engine) -> str | None:
    """The schema holding the participant tables, when the datasource's options name one."""
    schema = engine.get_execution_options().get(_SCHEMA_OPTION)
    return str(schema) if schema else None


def _redact(text: str, url: sa.URL) -> str:
    password = url.password
    if password:
        secret = str(password)
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}:
            text = text.replace(form, "***")
    return text


def _reason(exc: BaseException) -> str:
    """The driver's own words for a failure: no stack trace, no SQLAlchemy boilerplate."""
    orig = getattr(exc, "orig", None)
    source = orig if isinstance(orig, BaseException) else exc
    text = str(source) or type(source).__name__
    text = text.replace("Orig exception: ", "")
    text = text.split("Stack trace", 1)[0]
    text = text.split("(Background on this error", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines)[:400] or type(source).__name__


def _where(url: sa.URL) -> str:
    if url.get_backend_name() in ("duckdb", "sqlite"):
        return url.database or "memory"
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    database = f"/{url.database}" if url.database else ""
    return f"{host}{port}{database}"


def _unavailable(engine: sa.Engine, exc: BaseException, *, name: str | None = None) -> Unavailable:
    ds = name or datasource_name(engine)
    url = engine.url
    message = (
        f"datasource {ds!r} ({url.get_backend_name()} at {_where(url)}) cannot be reached: "
        f"{_reason(exc)}"
    )
    return Unavailable(_redact(message, url), field="datasource")


@contextlib.contextmanager
def connect(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection from the datasource's pool; failures to reach the warehouse are Unavailable.

    Errors in a statement itself (a missing column, a type mismatch) pass through unchanged:
    they are not the warehouse being down.
    """
    try:
        conn = engine.connect()
    except Exception as exc:  # whatever the driver raises while opening means "cannot reach"
        raise _unavailable(engine, exc) from exc
    with conn:
        try:
            yield conn
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise _unavailable(engine, exc) from exc
            raise
        except Exception as exc:
            if dialects.is_connection_failure(exc):
                raise _unavailable(engine, exc) from exc
            raise


def check_connection(engine: sa.Engine, *, name: str | None = None) -> ConnectionInfo:
    """Open a connection and run ``SELECT 1``, for ``xngin doctor`` and ``/health``.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        A datasource engine from :func:`get_engine`.
    name : str, optional
        The datasource's name for messages (default: the one the engine was created for).

    Returns
    -------
    ConnectionInfo
        Dialect, server version when the driver reports one, and the round-trip time.

    Raises
    ------
    xngin.errors.Unavailable
        Naming the datasource and the driver's reason, never the password.
    """
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).all()
            version_info = getattr(conn.dialect, "server_version_info", None)
    except Exception as exc:  # doctor and /health report any failure rather than crash
        raise _unavailable(engine, exc, name=name) from exc
    version = ".".join(str(p) for p in version_info) if version_info else None
    return ConnectionInfo(
        datasource=name or datasource_name(engine),
        dialect=engine.dialect.name,
        server_version=version,
        latency_ms=(time.perf_counter() - started) * 1000.0,
    )
