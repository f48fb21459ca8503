"""The Redis side of the query cache. Every key of a tenant carries its id as the hash tag
(``hybrid:qc:{<tenant>}:…``), so a tenant's keys share a cluster slot and its scripts may
touch them together; no key is ever shared between tenants.

- ``…:e:<fingerprint>`` (hash): ``b`` the compressed result, ``h`` its content hash, ``a``
  as_of (epoch seconds), ``wm`` the watermark (JSON), ``c`` connector, ``s`` source, ``n``
  rows, ``z`` compressed bytes, ``w`` a write id that changes with every write or bump.
- ``…:idx`` (hash): fingerprint → connector, so invalidation never scans the keyspace; it
  lives as long as the newest entry (every write pushes both expiries to the same TTL).
- ``…:epoch``: bumped by every invalidation. A writer passes the epoch it read before its
  query; a write whose epoch changed meanwhile is refused, so a result fetched before an
  invalidation never lands after it.
- ``…:o:<fingerprint>``: the outcome of the last flight (ok, refused, unavailable), for the
  requests that waited on it.
- ``…:hits`` (hash): uses per fingerprint since the timer last moved them to PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hybrid.cache import load_script, redis_errors
from hybrid.hotcache.payload import Encoded

COUNTER_TTL_S = 86_400
EPOCH_TTL_S = 86_400
OUTCOME_TTL_S = 60

# KEYS: entry, index, epoch, outcome
# ARGV: epoch, mode (full|bump), hash, as_of, write id, ttl, fingerprint, connector,
#       watermark, body, source, rows, compressed size, outcome JSON, outcome TTL
# Returns 1 written, 0 bumped, -1 the epoch moved (not written), -2 bump of changed content.
_PUT = """
local epoch = redis.call('GET', KEYS[3]) or '0'
if epoch ~= ARGV[1] then return -1 end
local result = 1
if ARGV[2] == 'bump' then
  if redis.call('HGET', KEYS[1], 'h') ~= ARGV[3] then return -2 end
  redis.call('HSET', KEYS[1], 'a', ARGV[4], 'w', ARGV[5], 'wm', ARGV[9])
  result = 0
else
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'b', ARGV[10], 'h', ARGV[3], 'a', ARGV[4], 'w', ARGV[5],
    'wm', ARGV[9], 'c', ARGV[8], 's', ARGV[11], 'n', ARGV[12], 'z', ARGV[13])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('HSET', KEYS[2], ARGV[7], ARGV[8])
redis.call('EXPIRE', KEYS[2], ARGV[6])
if ARGV[14] ~= '' then redis.call('SET', KEYS[4], ARGV[14], 'EX', ARGV[15]) end
return result
"""

# KEYS: index, epoch. ARGV: entry key prefix, connector ('' any), fingerprint ('' any),
# the epoch's TTL.
# Returns the number of entries removed.
_INVALIDATE = """
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
local removed = 0
local function drop(fp, connector)
  if ARGV[2] == '' or connector == ARGV[2] then
    removed = removed + redis.call('DEL', ARGV[1] .. fp)
    redis.call('HDEL', KEYS[1], fp)
  end
end
if ARGV[3] ~= '' then
  local connector = redis.call('HGET', KEYS[1], ARGV[3])
  if connector then drop(ARGV[3], connector) end
  return removed
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do drop(all[i], all[i + 1]) end
return removed
"""

# KEYS: a counter hash. Returns its fields and values, and deletes it (nothing is counted
# twice; what arrives after belongs to the next flush).
_DRAIN = """
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
"""

_scripts: dict[int, dict[str, Any]] = {}


def _script(client: Any, name: str, source: str) -> Any:
    per_client = _scripts.setdefault(id(client), {})
    script = per_client.get(name)
    if script is None:
        script = per_client[name] = load_script(client, source)
    return script


@dataclass(frozen=True)
class Entry:
    """A cached result as stored (the body stays compressed until it is served)."""

    body: bytes
    content_hash: str
    as_of: float
    watermark: Any
    connector_id: str
    source: str
    row_count: int
    compressed_bytes: int
    write_id: str

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes]) -> Entry | None:
        if not raw or b"b" not in raw:
            return None
        return cls(
            body=raw[b"b"],
            content_hash=raw.get(b"h", b"").decode(),
            as_of=float(raw.get(b"a", b"0")),
            watermark=json.loads(raw.get(b"wm", b"null")),
            connector_id=raw.get(b"c", b"").decode(),
            source=raw.get(b"s", b"").decode(),
            row_count=int(raw.get(b"n", b"0")),
            compressed_bytes=int(raw.get(b"z", b"0")),
            write_id=raw.get(b"w", b"").decode(),
        )


@dataclass(frozen=True)
class Outcome:
    """How the last flight of a query ended: ``ok``, ``refused`` or ``unavailable``."""

    id: str
    kind: str
    detail: str = ""
    code: str = ""
    retry_after: int = 0

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def parse(cls, raw: bytes | None) -> Outcome | None:
        if not raw:
            return None
        data = json.loads(raw)
        return cls(**{k: data[k] for k in ("id", "kind", "detail", "code", "retry_after")})

    @classmethod
    def new(cls, kind: str, **fields: Any) -> Outcome:
        return cls(id=uuid.uuid4().hex, kind=kind, **fields)


@dataclass(frozen=True)
class Seen:
    """One look at a query's entry and last outcome, and the tenant's invalidation epoch."""

    entry: Entry | None
    outcome: Outcome | None
    epoch: str = "0"

    def moved_on(self, before: Seen) -> bool:
        """True when a flight finished since `before` (a new write, bump or outcome)."""
        write = self.entry.write_id if self.entry else None
        earlier = before.entry.write_id if before.entry else None
        outcome = self.outcome.id if self.outcome else None
        earlier_outcome = before.outcome.id if before.outcome else None
        return write != earlier or outcome != earlier_outcome


class CacheStore:
    """One tenant's part of the cache. `redis` returns the process's client."""

    def __init__(self, redis: Callable[[], Any], tenant_id: str) -> None:
        self._redis = redis
        self.tenant_id = tenant_id
        self.prefix = f"hybrid:qc:{{{tenant_id}}}"

    def entry_key(self, fp: str) -> str:
        return f"{self.prefix}:e:{fp}"

    @property
    def index_key(self) -> str:
        return f"{self.prefix}:idx"

    @property
    def epoch_key(self) -> str:
        return f"{self.prefix}:epoch"

    @property
    def counter_key(self) -> str:
        return f"{self.prefix}:hits"

    def outcome_key(self, fp: str) -> str:
        return f"{self.prefix}:o:{fp}"

    def look(self, fp: str, *, count: bool = False) -> Seen:
        """The entry, the last outcome and the epoch in one round trip; `count` also logs a
        use of the query (the frequency the hot set is chosen by)."""
        with redis_errors():
            pipe = self._redis().pipeline(transaction=False)
            pipe.hgetall(self.entry_key(fp))
            pipe.get(self.outcome_key(fp))
            pipe.get(self.epoch_key)
            if count:
                pipe.hincrby(self.counter_key, fp, 1)
                pipe.expire(self.counter_key, COUNTER_TTL_S)
            replies = pipe.execute()
        epoch = replies[2]
        return Seen(
            entry=Entry.from_hash(replies[0]),
            outcome=Outcome.parse(replies[1]),
            epoch=epoch.decode() if epoch else "0",
        )

    def look_epoch(self) -> str:
        """The invalidation epoch (read before a query whose result will be written)."""
        with redis_errors():
            epoch = self._redis().get(self.epoch_key)
        return epoch.decode() if epoch else "0"

    def put(
        self,
        fp: str,
        encoded: Encoded,
        *,
        epoch: str,
        as_of: float,
        watermark: Any,
        connector_id: str,
        source: str,
        ttl_s: int,
        outcome: Outcome | None = None,
        bump_only: bool = False,
    ) -> int:
        """Write the entry (or with `bump_only` just move its as_of and TTL on, when its
        content hash is still `encoded.content_hash`). 1 written, 0 bumped, -1 refused (an
        invalidation came in between), -2 the content changed (write it in full)."""
        keys = [self.entry_key(fp), self.index_key, self.epoch_key, self.outcome_key(fp)]
        args = [
            epoch,
            "bump" if bump_only else "full",
            encoded.content_hash,
            repr(as_of),
            uuid.uuid4().hex,
            int(ttl_s),
            fp,
            connector_id,
            json.dumps(watermark, separators=(",", ":"), default=str),
            b"" if bump_only else encoded.compressed,
            source,
            encoded.row_count,
            len(encoded.compressed),
            outcome.to_json() if outcome else "",
            OUTCOME_TTL_S,
        ]
        client = self._redis()
        return int(_script(client, "put", _PUT)(keys, args, client=client))

    def set_outcome(self, fp: str, outcome: Outcome) -> None:
        with redis_errors():
            self._redis().set(self.outcome_key(fp), outcome.to_json(), ex=OUTCOME_TTL_S)

    def delete(self, fp: str) -> None:
        with redis_errors():
            pipe = self._redis().pipeline(transaction=False)
            pipe.delete(self.entry_key(fp))
            pipe.hdel(self.index_key, fp)
            pipe.execute()

    def invalidate(self, *, connector_id: str | None = None, fp: str | None = None) -> int:
        """Remove the tenant's entries (of one connector, or one query); how many."""
        client = self._redis()
        script = _script(client, "invalidate", _INVALIDATE)
        args = [f"{self.prefix}:e:", connector_id or "", fp or "", EPOCH_TTL_S]
        return int(script([self.index_key, self.epoch_key], args, client=client))

    def drain_counts(self) -> dict[str, int]:
        """The uses counted since the last drain (and reset them)."""
        client = self._redis()
        flat = _script(client, "drain", _DRAIN)([self.counter_key], [], client=client)
        return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2) if flat[i + 1]}

    def stamps(self, fps: Iterable[str]) -> dict[str, tuple[float, str, int]]:
        """(as_of, content hash, compressed bytes) of the entries that exist, in one trip."""
        fps = list(fps)
        if not fps:
            return {}
        with redis_errors():
            pipe = self._redis().pipeline(transaction=False)
            for fp in fps:
                pipe.hmget(self.entry_key(fp), "a", "h", "z")
            replies = pipe.execute()
        return {
            fp: (float(a), h.decode(), int(z or 0))
            for fp, (a, h, z) in zip(fps, replies, strict=True)
            if a is not None and h is not None
        }
