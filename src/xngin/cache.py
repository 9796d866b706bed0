"""The cache behind assignment lookups and field values: Redis in production, in-process otherwise.

Both speak bytes under string keys with an optional time to live. The store stays the source of
truth: every user of the cache must work (only slower) when the cache is empty or unreachable, so
Redis errors are swallowed here and reported by :meth:`Cache.ping` for `/health` and `doctor`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Protocol

log = logging.getLogger(__name__)


class Cache(Protocol):
    kind: str

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None: ...

    def delete(self, *keys: str) -> None: ...

    def incr(self, key: str) -> int | None: ...

    def ping(self) -> str | None:
        """None when healthy, else a short reason."""
        ...

    def close(self) -> None: ...


class MemoryCache:
    """A thread-safe LRU with per-entry expiry, for one process."""

    kind = "memory"

    def __init__(self, max_entries: int = 200_000) -> None:
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            value, expires = item
            if expires is not None and expires < time.monotonic():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        expires = time.monotonic() + ttl if ttl else None
        with self._lock:
            self._data[key] = (value, expires)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def incr(self, key: str) -> int | None:
        with self._lock:
            current = self._data.get(key)
            value = int(current[0]) + 1 if current else 1
            self._data[key] = (str(value).encode(), None)
            return value

    def ping(self) -> str | None:
        return None

    def close(self) -> None:
        with self._lock:
            self._data.clear()


class RedisCache:
    """Redis-backed cache; errors degrade to cache misses so lookups fall back to the store."""

    kind = "redis"

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(
            url, socket_connect_timeout=0.25, socket_timeout=0.25, health_check_interval=10
        )
        self._errors = (redis.RedisError, OSError)

    def get(self, key: str) -> bytes | None:
        try:
            value = self._redis.get(key)
        except self._errors as exc:
            log.warning("cache get failed: %s", exc)
            return None
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        try:
            self._redis.set(key, value, px=int(ttl * 1000) if ttl else None)
        except self._errors as exc:
            log.warning("cache set failed: %s", exc)

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        try:
            self._redis.delete(*keys)
        except self._errors as exc:
            log.warning("cache delete failed: %s", exc)

    def incr(self, key: str) -> int | None:
        try:
            return int(self._redis.incr(key))
        except self._errors as exc:
            log.warning("cache incr failed: %s", exc)
            return None

    def ping(self) -> str | None:
        try:
            self._redis.ping()
        except self._errors as exc:
            return f"redis unreachable: {exc}"
        return None

    def close(self) -> None:
        self._redis.close()


def create_cache(url: str) -> Cache:
    if url.startswith("memory://") or not url:
        return MemoryCache()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(url)
    from xngin.errors import ConfigError

    raise ConfigError(
        f"cache_url {url.split('://')[0]}:// is not supported; use memory:// or redis://",
        field="cache_url",
    )
