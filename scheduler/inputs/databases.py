"""Database connections shared by the stages that read or keep records in SQL (SQLAlchemy Core).

A database is named by a SQLAlchemy URL (``sqlite:///plans.db``, ``postgresql+psycopg://user@host/db``);
a bare path such as ``plans.db`` means a SQLite file. ``postgresql://`` and ``postgres://`` use psycopg 3.
Inputs read from a database (``scheduler.output.sql.read_tables``), plans written to one
(``scheduler.output.sql.write_plan_db``) and the bookings ledger (``scheduler.planning.ledger``) connect here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from scheduler.inputs.errors import EvdcError


def database_url(target: str | Path | sa.URL) -> sa.URL:
    """The SQLAlchemy URL of ``target``: a URL as given, a bare path as a SQLite file."""
    if isinstance(target, sa.URL):
        url = target
    elif "://" not in str(target):
        return sa.URL.create("sqlite", database=str(target))
    else:
        try:
            url = sa.make_url(str(target))
        except sa.exc.ArgumentError:
            raise EvdcError(f"{target!r}: not a database URL (e.g. sqlite:///plans.db or "
                            "postgresql+psycopg://user@host/db)") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def where(engine: Engine) -> str:
    """The database for messages, without its password."""
    return engine.url.render_as_string(hide_password=True)


def sqlite_file(url: sa.URL) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


@contextmanager
def engine_for(target: str | Path | sa.URL | Engine, must_exist: bool = False) -> Iterator[Engine]:
    """An engine for ``target``; one made here is disposed afterwards, a given one is left open.

    With ``must_exist`` a SQLite file that is not there is an error (SQLite would create an empty one)."""
    if isinstance(target, Engine):
        yield target
        return
    url = database_url(target)
    file = sqlite_file(url)
    if must_exist and file is not None and not file.is_file():
        raise EvdcError(f"{file}: no such database file")
    try:
        engine = sa.create_engine(url)
    except (ImportError, sa.exc.ArgumentError) as exc:
        shown = url.render_as_string(hide_password=True)
        raise EvdcError(f"{shown}: cannot use this database ({reason(exc)})") from None
    try:
        yield engine
    finally:
        engine.dispose()


def reason(exc: BaseException) -> str:
    """The first line of a driver's error message."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__
