"""Everything a running xngin holds open: settings, the app database, the cache, the event store.

One :class:`Runtime` per process (the API keeps it on ``app.state``; the CLI makes its own).
Services receive it, or pieces of it, explicitly; nothing here is a module-level global.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from xngin.cache import Cache, create_cache
from xngin.settings import Settings
from xngin.store.db import create_app_engine, make_session_factory

if TYPE_CHECKING:
    from xngin.events.store import EventStore


@dataclass
class Runtime:
    settings: Settings
    app_engine: sa.Engine
    sessions: sessionmaker[Session]
    cache: Cache
    _event_store: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        engine = create_app_engine(settings.resolved_database_url)
        return cls(
            settings=settings,
            app_engine=engine,
            sessions=make_session_factory(engine),
            cache=create_cache(settings.cache_url),
        )

    @property
    def event_store(self) -> EventStore:
        """The event store, opened on first use (a DuckDB file allows one writer process)."""
        with self._lock:
            if self._event_store is None:
                from xngin.events import open_event_store

                store = open_event_store(self.settings.resolved_event_store_url)
                store.migrate()
                self._event_store = store
            return self._event_store  # type: ignore[no-any-return]

    def close(self) -> None:
        from xngin.dwh.engines import dispose_all

        if self._event_store is not None:
            self._event_store.close()
        dispose_all()
        self.cache.close()
        self.app_engine.dispose()
