"""The cache behind assignment lookups and field values: Redis in production, in-process otherwise.

Both speak bytes under string keys with an optional time to live. The store stays the source of
truth: every user of the cache must work (only slower) when the cache is empty or unreachable, so
Redis errors are swallowed here and reported by :meth:`Cache.ping` for `/health` and `doctor`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Cache(Protocol):
    kind: str

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None: ...

    def delete(self, *keys: str) -> None: ...

    def mget(self, *keys: str) -> list[bytes | None]:
        """The values of ``keys`` in order (None for a missing key), in one round trip."""
        ...

    async def amget(self, *keys: str) -> list[bytes | None]:
        """:meth:`mget` for async code: waits without blocking the event loop."""
        ...

    def add(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        """Set ``key`` only if it is absent; True when this call set it."""
        ...

    def set_many(self, items: Iterable[tuple[str, bytes]], *, ttl: float | None = None) -> None:
        """Set many keys with one time to live, pipelined (no atomicity promised)."""
        ...

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

    def _live(self, key: str, now: float) -> bytes | None:
        """The value under ``key`` unless expired; the caller holds the lock."""
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires < now:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def mget(self, *keys: str) -> list[bytes | None]:
        now = time.monotonic()
        with self._lock:
            return [self._live(key, now) for key in keys]

    async def amget(self, *keys: str) -> list[bytes | None]:
        return self.mget(*keys)

    def add(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._live(key, now) is not None:
                return False
            self._data[key] = (value, now + ttl if ttl else None)
            self._trim()
            return True

    def set_many(self, items: Iterable[tuple[str, bytes]], *, ttl: float | None = None) -> None:
        expires = time.monotonic() + ttl if ttl else None
        with self._lock:
            for key, value in items:
                self._data[key] = (value, expires)
                self._data.move_to_end(key)
            self._trim()

    def _trim(self) -> None:
        while len(self._data) > self._max:
            self._data.popitem(last=False)

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

        self._url = url
        self._options: dict[str, Any] = {
            "socket_connect_timeout": 0.25,
            "socket_timeout": 0.25,
            "health_check_interval": 10,
        }
        self._redis = redis.Redis.from_url(url, **self._options)
        self._async: tuple[asyncio.AbstractEventLoop, _MgetBatcher] | None = None
        self._errors = (redis.RedisError, OSError, asyncio.TimeoutError)

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

    def mget(self, *keys: str) -> list[bytes | None]:
        if not keys:
            return []
        try:
            values = self._redis.mget(keys)
        except self._errors as exc:
            log.warning("cache mget failed: %s", exc)
            return [None] * len(keys)
        return [v if isinstance(v, bytes) else None for v in values]

    async def amget(self, *keys: str) -> list[bytes | None]:
        if not keys:
            return []
        return await self._batcher().mget(keys)

    def _batcher(self) -> _MgetBatcher:
        """The batcher of the running event loop (asyncio connections belong to one loop)."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(self._url, **self._options)
            self._async = (loop, _MgetBatcher(client, self._errors))
        return self._async[1]

    def add(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        try:
            return bool(self._redis.set(key, value, px=int(ttl * 1000) if ttl else None, nx=True))
        except self._errors as exc:
            log.warning("cache add failed: %s", exc)
            return False

    def set_many(self, items: Iterable[tuple[str, bytes]], *, ttl: float | None = None) -> None:
        px = int(ttl * 1000) if ttl else None
        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, value in items:
                pipe.set(key, value, px=px)
            pipe.execute()
        except self._errors as exc:
            log.warning("cache set_many failed: %s", exc)

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
        self._async = None  # its connections belong to an event loop that may be gone
        self._redis.close()


class _MgetBatcher:
    """Coalesces the MGETs of concurrent requests on one event loop into one Redis command.

    While a batch is in flight, new requests wait and go out together in the next one: under load
    one round trip serves many lookups (Redis and client-side work is per command far more than per
    key); a lone request goes out on the next loop iteration.
    """

    def __init__(self, client: Any, errors: tuple[type[BaseException], ...]) -> None:
        self._client = client
        self._errors = errors
        self._waiting: list[tuple[tuple[str, ...], asyncio.Future[list[bytes | None]]]] = []
        self._busy = False

    async def mget(self, keys: tuple[str, ...]) -> list[bytes | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bytes | None]] = loop.create_future()
        self._waiting.append((keys, future))
        if not self._busy:
            self._busy = True
            loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                flat = [key for keys, _ in batch for key in keys]
                try:
                    values = await self._client.mget(flat)
                except self._errors as exc:
                    log.warning("cache mget failed: %s", exc)
                    values = [None] * len(flat)
                except BaseException as exc:  # never leave a request waiting forever
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    raise
                start = 0
                for keys, future in batch:
                    if not future.done():  # a cancelled request leaves a done future behind
                        part = values[start : start + len(keys)]
                        future.set_result([v if isinstance(v, bytes) else None for v in part])
                    start += len(keys)
        finally:
            self._busy = False


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
