"""The event relay's log: every topic's events, numbered, kept for a while, readable from any number.

A topic is a conversation's events (``conversation.<id>``) or a control
channel of a user, session or API token (``accounts.tokens``). Writers
(pipeline steps, services, the accounts app) append; each Daphne process runs
one reader (``companionhub.relay_reader``) that follows every topic its
sockets need and hands the events straight to them.

Every appended event gets the topic's next **sequence number**: consecutive,
so a socket that sees ``n`` after ``m`` with ``n > m + 1`` knows it missed
something and reads the gap back from the log (or, when the log no longer
holds it, is sent a fresh snapshot). Numbers start from the clock in
microseconds when a topic's counter is created, so after Redis loses
everything (a restart without persistence) they go on upwards and every
socket notices the jump instead of taking new events for old ones.

On Redis (``RedisLog``) a topic is a stream whose entry ids are the sequence
numbers (``<seq>-0``), trimmed to about ``CHAT_RELAY_LOG_LENGTH`` entries and
expiring ``CHAT_RELAY_LOG_SECONDS`` after its last event. One Lua script does
a whole append atomically -- the refusal flag check, the flag, the live text,
the numbers and the entries -- and ``append_many`` sends any number of appends
(every reply's token batch of one tick) in one pipelined round trip over one
persistent connection per process. Without Redis (the embedded default, one
process) ``MemoryLog`` keeps the same rules in memory.

Flags and live texts are what make a run's end exact: a cancel or a failure
sets the run's *ended* flag in the same script that appends its last event,
and every later append guarded by that flag is refused, so nothing of a
cancelled run reaches a socket after ``cancelled``; the worker learns of the
refusal from the append it was making anyway. A live text is the reply
written so far, appended to with each token batch, so a socket that connects
mid-reply gets all of it in its snapshot.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import redis
import redis.asyncio as aioredis
import structlog
from django.conf import settings
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

log = structlog.get_logger(__name__)

# The text of an append: left alone, added to, or replaced (a reply's final, cleaned text).
TEXT_NONE, TEXT_APPEND, TEXT_REPLACE = 0, 1, 2
REFUSED = -1  # what ``append`` returns when the guarding flag was set


@dataclass
class Append:
    """One atomic append to a topic."""

    topic: str
    events: Sequence[Mapping[str, Any]] = ()
    unless_flag: str | None = None  # refuse the whole append when this flag is set
    set_flag: str | None = None  # set this flag in the same step (e.g. a run's end)
    text_key: str | None = None  # a live text to add ``text`` to, or to replace with it
    text: str = ""
    text_mode: int = TEXT_NONE
    # TEXT_APPEND: the live text's length in UTF-8 bytes before this append, as the writer knows
    # it. A live text of any other length (lost in a Redis restart) is left alone and the result
    # says so (``text_ok``), so the writer replaces it whole next time.
    text_bytes: int = -1


class Result(NamedTuple):
    last: int  # the last number given, 0 for no events, ``REFUSED`` when the guard refused
    text_ok: bool = True


@dataclass
class Entry:
    seq: int
    event: dict[str, Any]


@dataclass
class ReadResult:
    entries: dict[str, list[Entry]] = field(default_factory=dict)


class RelayLog(Protocol):
    def append_many(self, appends: Sequence[Append]) -> list[Result]: ...
    async def aappend_many(self, appends: Sequence[Append]) -> list[Result]: ...
    async def aflag_set(self, flag: str) -> bool: ...
    def last_seq(self, topic: str) -> int: ...
    def flag_set(self, flag: str) -> bool: ...
    def live_text(self, key: str) -> str | None: ...
    def forget_text(self, key: str) -> None: ...
    async def aread(self, cursors: Mapping[str, int], *, block_ms: int) -> dict[str, list[Entry]]: ...
    async def arange(self, topic: str, after: int) -> list[Entry]: ...
    async def alast_seq(self, topic: str) -> int: ...


def _seq_start() -> int:
    """A new topic's first number: the clock in microseconds (see the module's docstring)."""
    return time.time_ns() // 1000


def _dumps(event: Mapping[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


# --- Redis -----------------------------------------------------------------------

# KEYS: stream, counter, unless-flag, set-flag, text. ARGV: maxlen, ttl, has-unless, has-set,
# text-mode, text, text-bytes, event count, events... Returns {the last number given (0 for no
# events, -1 refused), 1 when the live text was as expected}.
APPEND_SCRIPT = """
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return {-1, 1} end
if ARGV[4] == '1' then redis.call('SET', KEYS[4], '1', 'EX', ARGV[2]) end
local text_ok = 1
if ARGV[5] == '1' then
  local expected = tonumber(ARGV[7])
  if expected >= 0 and redis.call('STRLEN', KEYS[5]) ~= expected then
    text_ok = 0
  else
    redis.call('APPEND', KEYS[5], ARGV[6])
    redis.call('EXPIRE', KEYS[5], ARGV[2])
  end
elseif ARGV[5] == '2' then
  redis.call('SET', KEYS[5], ARGV[6], 'EX', ARGV[2])
end
local n = tonumber(ARGV[8])
if n == 0 then return {0, text_ok} end
if redis.call('EXISTS', KEYS[2]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[2], string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2])))
end
local last = redis.call('INCRBY', KEYS[2], n)
redis.call('EXPIRE', KEYS[2], ARGV[2])
local seq = last - n
for i = 1, n do
  seq = seq + 1
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], string.format('%d-0', seq), 'e', ARGV[8 + i])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {last, text_ok}
"""


def _result(value: Any) -> Result:
    last, text_ok = value
    return Result(int(last), bool(int(text_ok)))


def _seq_of(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[0])


def _entries(raw: Any) -> list[Entry]:
    found = []
    for entry_id, fields in raw or ():
        data = fields.get(b"e") or fields.get("e")
        try:
            event = json.loads(data)
        except (TypeError, ValueError):
            log.warning("relay_entry_unreadable", entry=str(entry_id))
            continue
        found.append(Entry(_seq_of(entry_id), event))
    return found


class RedisLog:
    """The log on Redis streams (see the module's docstring)."""

    def __init__(self, url: str, *, prefix: str, maxlen: int, ttl: int) -> None:
        self.url = url
        self.prefix = prefix
        self.maxlen = maxlen
        self.ttl = ttl
        self._client: redis.Redis | None = None
        self._script: Any = None
        self._lock = threading.Lock()
        self._async: dict[asyncio.AbstractEventLoop, aioredis.Redis] = {}
        self._ascripts: dict[aioredis.Redis, Any] = {}

    # Keys
    def stream_key(self, topic: str) -> str:
        return f"{self.prefix}:log:{topic}"

    def counter_key(self, topic: str) -> str:
        return f"{self.prefix}:seq:{topic}"

    def flag_key(self, flag: str) -> str:
        return f"{self.prefix}:flag:{flag}"

    def text_key(self, key: str) -> str:
        return f"{self.prefix}:text:{key}"

    # Sync side (writers)
    def client(self) -> redis.Redis:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    # Retries ride out a Redis restart of a few seconds instead of failing the reply.
                    self._client = redis.Redis.from_url(
                        self.url,
                        socket_timeout=5,
                        socket_connect_timeout=2,
                        health_check_interval=30,
                        retry_on_timeout=True,
                    )
                    self._script = self._client.register_script(APPEND_SCRIPT)
        return self._client

    def append_many(self, appends: Sequence[Append]) -> list[Result]:
        client = self.client()
        if len(appends) == 1:
            return [_result(self._script(**self._call(appends[0])))]
        pipe = client.pipeline(transaction=False)
        for append in appends:
            self._script(client=pipe, **self._call(append))
        return [_result(value) for value in pipe.execute()]

    def _call(self, append: Append) -> dict[str, Any]:
        # All bytes: redis-py packs a str or int argument in Python, one at a time, and a tick
        # sends some sixteen for each reply streaming.
        keys = [
            self.stream_key(append.topic).encode(),
            self.counter_key(append.topic).encode(),
            self.flag_key(append.unless_flag or "-").encode(),
            self.flag_key(append.set_flag or "-").encode(),
            self.text_key(append.text_key or "-").encode(),
        ]
        args = [
            b"%d" % self.maxlen,
            b"%d" % self.ttl,
            b"1" if append.unless_flag else b"0",
            b"1" if append.set_flag else b"0",
            b"%d" % (append.text_mode if append.text_key else TEXT_NONE),
            append.text.encode(),
            b"%d" % append.text_bytes,
            b"%d" % len(append.events),
            *(_dumps(event).encode() for event in append.events),
        ]
        return {"keys": keys, "args": args}

    def last_seq(self, topic: str) -> int:
        """The topic's last number; a topic without one gets its starting number now, so a
        reader's first event is always this plus one."""
        pipe = self.client().pipeline(transaction=False)
        pipe.set(self.counter_key(topic), _seq_start(), nx=True, ex=self.ttl)
        pipe.get(self.counter_key(topic))
        return int(pipe.execute()[1])

    def flag_set(self, flag: str) -> bool:
        return bool(self.client().exists(self.flag_key(flag)))

    def live_text(self, key: str) -> str | None:
        value: Any = self.client().get(self.text_key(key))
        return None if value is None else bytes(value).decode("utf-8", "replace")

    def forget_text(self, key: str) -> None:
        self.client().delete(self.text_key(key))

    # Async side (the readers in Daphne), one client per event loop
    def aclient(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            for other in [other for other in self._async if other.is_closed()]:
                self._ascripts.pop(self._async.pop(other), None)
            # One retry, on a fresh connection: one left idle in the pool across a Redis restart
            # is stale, and without it the command after the restart failed (a client from a URL
            # gets no retries otherwise; the sync client's come with retry_on_timeout).
            client = aioredis.Redis.from_url(
                self.url,
                socket_timeout=None,
                socket_connect_timeout=2,
                health_check_interval=30,
                retry=AsyncRetry(NoBackoff(), 1),
            )
            self._async[loop] = client
        return client

    async def aappend_many(self, appends: Sequence[Append]) -> list[Result]:
        """``append_many`` from an event loop: the appends of every reply of one tick, one round trip."""
        client = self.aclient()
        script = self._ascripts.get(client)
        if script is None:
            script = self._ascripts[client] = client.register_script(APPEND_SCRIPT)
        pipe = client.pipeline(transaction=False)
        for append in appends:
            await script(client=pipe, **self._call(append))
        return [_result(value) for value in await pipe.execute()]

    async def aflag_set(self, flag: str) -> bool:
        return bool(await self.aclient().exists(self.flag_key(flag)))

    async def aread(self, cursors: Mapping[str, int], *, block_ms: int) -> dict[str, list[Entry]]:
        if not cursors:
            return {}
        # Bytes: redis-py packs a str argument in Python, one at a time, and a read names every
        # topic the process follows, a hundred times a second.
        streams: Any = {self.stream_key(topic).encode(): b"%d-0" % seq for topic, seq in cursors.items()}
        raw: Any = await self.aclient().xread(streams, count=1000, block=block_ms)
        found: dict[str, list[Entry]] = {}
        start = len(self.prefix) + len(":log:")
        for key, entries in raw or []:
            name = key.decode() if isinstance(key, bytes) else key
            found[name[start:]] = _entries(entries)
        return found

    async def arange(self, topic: str, after: int) -> list[Entry]:
        raw: Any = await self.aclient().xrange(self.stream_key(topic), min=f"({after}-0", max="+")
        return _entries(raw)

    async def alast_seq(self, topic: str) -> int:
        """As ``last_seq``, from an event loop."""
        pipe = self.aclient().pipeline(transaction=False)
        pipe.set(self.counter_key(topic), _seq_start(), nx=True, ex=self.ttl)
        pipe.get(self.counter_key(topic))
        return int((await pipe.execute())[1])


# --- memory (one process, no Redis) --------------------------------------------------


class MemoryLog:
    """The same rules in this process's memory: the embedded default and tests without Redis."""

    def __init__(self, *, maxlen: int) -> None:
        self.maxlen = maxlen
        self._lock = threading.Lock()
        self._logs: dict[str, deque[Entry]] = {}
        self._counters: dict[str, int] = {}
        self._flags: set[str] = set()
        self._texts: dict[str, str] = {}
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def append_many(self, appends: Sequence[Append]) -> list[Result]:
        results = []
        with self._lock:
            for append in appends:
                results.append(self._append(append))
            waiters = list(self._waiters)
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)
        return results

    async def aappend_many(self, appends: Sequence[Append]) -> list[Result]:
        return self.append_many(appends)

    async def aflag_set(self, flag: str) -> bool:
        return self.flag_set(flag)

    def _append(self, append: Append) -> Result:
        if append.unless_flag and append.unless_flag in self._flags:
            return Result(REFUSED)
        if append.set_flag:
            self._flags.add(append.set_flag)
        text_ok = True
        if append.text_key and append.text_mode == TEXT_APPEND:
            have = self._texts.get(append.text_key, "")
            text_ok = append.text_bytes < 0 or len(have.encode()) == append.text_bytes
            if text_ok:
                self._texts[append.text_key] = have + append.text
        elif append.text_key and append.text_mode == TEXT_REPLACE:
            self._texts[append.text_key] = append.text
        if not append.events:
            return Result(0, text_ok)
        seq = self._counters.get(append.topic) or _seq_start()
        entries = self._logs.setdefault(append.topic, deque(maxlen=self.maxlen))
        for event in append.events:
            seq += 1
            entries.append(Entry(seq, json.loads(_dumps(event))))
        self._counters[append.topic] = seq
        return Result(seq, text_ok)

    def last_seq(self, topic: str) -> int:
        with self._lock:
            return self._counters.setdefault(topic, _seq_start())

    def flag_set(self, flag: str) -> bool:
        with self._lock:
            return flag in self._flags

    def live_text(self, key: str) -> str | None:
        with self._lock:
            return self._texts.get(key)

    def forget_text(self, key: str) -> None:
        with self._lock:
            self._texts.pop(key, None)

    def _after(self, topic: str, after: int) -> list[Entry]:
        return [entry for entry in self._logs.get(topic, ()) if entry.seq > after]

    async def aread(self, cursors: Mapping[str, int], *, block_ms: int) -> dict[str, list[Entry]]:
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            found = {topic: self._after(topic, seq) for topic, seq in cursors.items()}
            found = {topic: entries for topic, entries in found.items() if entries}
            if found or block_ms <= 0:
                return found
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter[1].wait(), block_ms / 1000)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(waiter)
        with self._lock:
            found = {topic: self._after(topic, seq) for topic, seq in cursors.items()}
        return {topic: entries for topic, entries in found.items() if entries}

    async def arange(self, topic: str, after: int) -> list[Entry]:
        with self._lock:
            return self._after(topic, after)

    async def alast_seq(self, topic: str) -> int:
        return self.last_seq(topic)


_log: RelayLog | None = None
_log_config: tuple[Any, ...] | None = None
_log_lock = threading.Lock()


def relay_log() -> RelayLog:
    """The process's log, for the configured Redis (or memory); rebuilt when the settings change."""
    global _log, _log_config
    config = (
        settings.REDIS_URL,
        settings.CHAT_RELAY_PREFIX,
        settings.CHAT_RELAY_LOG_LENGTH,
        settings.CHAT_RELAY_LOG_SECONDS,
    )
    if _log is None or config != _log_config:
        with _log_lock:
            if _log is None or config != _log_config:
                url, prefix, maxlen, ttl = config
                _log = (
                    RedisLog(url, prefix=prefix, maxlen=maxlen, ttl=ttl) if url else MemoryLog(maxlen=maxlen)
                )
                _log_config = config
    return _log


def publish(topic: str, *events: Mapping[str, Any], unless_flag: str | None = None,
            set_flag: str | None = None) -> int:  # fmt: skip
    """Append ``events`` to ``topic`` now; the last number given, or ``REFUSED``.

    Raises what the log raises (Redis down): callers decide whether an event may be lost.
    """
    append = Append(topic, events, unless_flag=unless_flag, set_flag=set_flag)
    return relay_log().append_many([append])[0].last
