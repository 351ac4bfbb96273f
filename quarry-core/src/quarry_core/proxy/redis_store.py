"""Redis proxy state store (``quarry-core[redis]``), shared across workers and machines (proxy.md §7).

A pool's state is JSON under ``<key_prefix>:<pool>``. The built-in strategies run as ONE Lua script
(``EVALSHA``, ``cjson``) that decodes, normalises, chooses, counts and stores; ``rand`` and ``now_ms`` are
arguments so the script is deterministic and matches :func:`quarry_core.proxy.strategies.apply_operation`.
Plugin strategies use ``WATCH``/``MULTI``/``EXEC`` with up to 10 tries. ``redis.asyncio`` is imported lazily.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from quarry_core.proxy.errors import ProxyStateStoreError
from quarry_core.proxy.model import ProxyPool
from quarry_core.proxy.stores import DEFAULT_KEY_PREFIX, StateStoreConfig, _decode, _encode
from quarry_core.proxy.strategies import OperationResult, StrategyRequest

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["LUA_APPLY", "WATCH_TRIES", "RedisStateStore", "lua_arguments", "redact_url"]

R = TypeVar("R")

#: Optimistic-transaction attempts for plugin strategies.
WATCH_TRIES = 10

#: KEYS[1] = state key. ARGV: mode (select|rotate), strategy, n, fingerprint, sticky_key ("" = none),
#: commit ("1"/"0"), window ("0" = none), ttl_ms ("" = none), current_index ("-1" = none), now_ms, rand.
#: Returns ``{"index", "changed", "reset", "selections", "rotations", "state"}`` as JSON.
LUA_APPLY = r"""
local MAX_MS = 9007199254740991
local mode = ARGV[1]
local strategy = ARGV[2]
local n = tonumber(ARGV[3])
local fp = ARGV[4]
local key = ARGV[5]
local commit = ARGV[6] == "1"
local window = tonumber(ARGV[7])
local ttl = nil
if ARGV[8] ~= "" then ttl = tonumber(ARGV[8]) end
local current = tonumber(ARGV[9])
local now = tonumber(ARGV[10])
local rand = tonumber(ARGV[11])

local function isint(x)
  return type(x) == "number" and x == math.floor(x) and x == x and x ~= math.huge and x ~= -math.huge
end
local function nonneg(x) return isint(x) and x >= 0 end
local function imod(a, b) return math.fmod(a, b) end
local function contains(t, x)
  for _, v in ipairs(t) do if v == x then return true end end
  return false
end

-- decode and normalise
local raw = redis.call("GET", KEYS[1])
local reset = false
local st = nil
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == "table" and decoded["fingerprint"] == fp then st = decoded else reset = true end
end
local rr, selections, rotations, last = 0, 0, 0, nil
local sticky = {}
local recent = {}
if st then
  if nonneg(st["rr_index"]) then rr = st["rr_index"] end
  if nonneg(st["selections"]) then selections = st["selections"] end
  if nonneg(st["rotations"]) then rotations = st["rotations"] end
  if isint(st["last_used_at"]) then last = st["last_used_at"] end
  local s = st["sticky"]
  if type(s) == "table" then
    for k, v in pairs(s) do
      if type(k) == "string" and type(v) == "table" and nonneg(v["index"]) and v["index"] < n then
        local e = v["expires_at_ms"]
        if e == nil or e == cjson.null then
          sticky[k] = {index = v["index"], has_exp = false, exp = 0}
        elseif isint(e) then
          sticky[k] = {index = v["index"], has_exp = true, exp = e}
        end
      end
    end
  end
  local r = st["recent"]
  if type(r) == "table" then
    local valid = {}
    for _, v in ipairs(r) do
      if nonneg(v) and v < n then table.insert(valid, v) end
    end
    local seen, rev = {}, {}
    for i = #valid, 1, -1 do
      local v = valid[i]
      if not seen[v] then seen[v] = true; table.insert(rev, v) end
    end
    for i = #rev, 1, -1 do table.insert(recent, rev[i]) end
    if window > 0 then
      while #recent > window do table.remove(recent, 1) end
    end
  end
end

local function expiry()
  if ttl == nil then return false, 0 end
  local e = now + ttl
  if e > MAX_MS then e = MAX_MS end
  return true, e
end
local function mark(idx)
  for i = #recent, 1, -1 do if recent[i] == idx then table.remove(recent, i) end end
  table.insert(recent, idx)
  while #recent > window do table.remove(recent, 1) end
end

-- choose or rotate
local index, changed = 0, false
if mode == "select" then
  if n == 1 then
    index = 0
  elseif strategy == "round_robin" then
    index = imod(rr, n)
    if commit then rr = imod(index + 1, n) end
  elseif strategy == "random" then
    if window > 0 then
      local c = {}
      for i = 0, n - 1 do if not contains(recent, i) then table.insert(c, i) end end
      if #c > 0 then index = c[imod(rand, #c) + 1] else index = recent[1] end
      if commit then mark(index) end
    else
      index = imod(rand, n)
    end
  else
    local e = sticky[key]
    if e and ((not e.has_exp) or e.exp > now) then
      index = e.index
    else
      index = imod(rand, n)
      if commit then
        local h, x = expiry()
        sticky[key] = {index = index, has_exp = h, exp = x}
      end
    end
  end
else
  if n == 1 then
    index = 0
  else
    local others = {}
    for i = 0, n - 1 do if i ~= current then table.insert(others, i) end end
    if strategy == "round_robin" then
      index = imod(rr, n)
      if index == current then index = imod(index + 1, n) end
      if commit then rr = imod(index + 1, n) end
    elseif strategy == "random" then
      if window > 0 then
        local c = {}
        for _, i in ipairs(others) do if not contains(recent, i) then table.insert(c, i) end end
        if #c == 0 then
          for _, v in ipairs(recent) do if v ~= current then c = {v}; break end end
        end
        index = c[imod(rand, #c) + 1]
        if commit then mark(index) end
      else
        index = others[imod(rand, #others) + 1]
      end
    else
      index = others[imod(rand, #others) + 1]
      if commit then
        local h, x = expiry()
        sticky[key] = {index = index, has_exp = h, exp = x}
      end
    end
  end
  changed = index ~= current
end

-- count, stamp, purge, store
if commit then
  if mode == "select" then selections = selections + 1 else rotations = rotations + 1 end
  last = now
  for k, e in pairs(sticky) do
    if e.has_exp and e.exp <= now then sticky[k] = nil end
  end
end

local function int(x) return string.format("%d", x) end
local parts = {}
for k, e in pairs(sticky) do
  local ex = "null"
  if e.has_exp then ex = int(e.exp) end
  table.insert(parts, cjson.encode(k) .. ':{"index":' .. int(e.index) .. ',"expires_at_ms":' .. ex .. '}')
end
local rec = {}
for _, v in ipairs(recent) do table.insert(rec, int(v)) end
local lastj = "null"
if last ~= nil then lastj = int(last) end
local doc = '{"fingerprint":' .. cjson.encode(fp) .. ',"rr_index":' .. int(rr) .. ',"sticky":{' ..
  table.concat(parts, ",") .. '},"recent":[' .. table.concat(rec, ",") .. '],"selections":' .. int(selections) ..
  ',"rotations":' .. int(rotations) .. ',"last_used_at":' .. lastj .. '}'
if commit then redis.call("SET", KEYS[1], doc) end
return '{"index":' .. int(index) .. ',"changed":' .. tostring(changed) .. ',"reset":' .. tostring(reset) ..
  ',"selections":' .. int(selections) .. ',"rotations":' .. int(rotations) .. ',"state":' .. doc .. '}'
"""


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        userinfo = f"{parts.username or ''}:***"
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{userinfo}@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return "<redis url>"


def lua_arguments(pool: ProxyPool, request: StrategyRequest, now_ms: int, rand: int) -> list[str]:
    """The ``ARGV`` of :data:`LUA_APPLY` for one operation."""
    ttl = pool.sticky.ttl_ms if pool.sticky is not None and pool.sticky.ttl_ms is not None else None
    return [
        "rotate" if request.is_rotation else "select",
        request.strategy,
        str(len(pool.endpoints)),
        pool.fingerprint,
        request.sticky_key or "",
        "1" if request.commit else "0",
        str(request.recency_window or 0),
        "" if ttl is None else str(ttl),
        str(request.current_index if request.current_index is not None else -1),
        str(now_ms),
        str(rand),
    ]


class RedisStateStore:
    """Pool state as JSON under ``<key_prefix>:<pool>`` in Redis."""

    label = "redis"

    def __init__(self, url: str, key_prefix: str = DEFAULT_KEY_PREFIX, *, timeout_s: float = 5.0) -> None:
        if not url:
            raise ProxyStateStoreError("redis state store: a url is required")
        self.url = url
        self.key_prefix = key_prefix or DEFAULT_KEY_PREFIX
        self.timeout_s = timeout_s
        self._client: redis.asyncio.Redis | None = None
        self._loop: object = None
        self._script: Any = None

    @classmethod
    def from_config(cls, config: StateStoreConfig) -> RedisStateStore:
        """Build from ``proxy.state_store`` (``url``, ``key_prefix``)."""
        return cls(url=config.url or "", key_prefix=config.key_prefix)

    def __repr__(self) -> str:
        return f"RedisStateStore(url={redact_url(self.url)!r}, key_prefix={self.key_prefix!r})"

    def key(self, pool: ProxyPool | str) -> str:
        """``<key_prefix>:<pool>``."""
        name = pool.name if isinstance(pool, ProxyPool) else pool
        return f"{self.key_prefix}:{name}"

    def _error(self, exc: BaseException) -> ProxyStateStoreError:
        return ProxyStateStoreError(f"redis state store {redact_url(self.url)} unavailable: {exc}")

    def _get_client(self) -> redis.asyncio.Redis:
        import asyncio

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            try:
                import redis.asyncio as aioredis
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ProxyStateStoreError(
                    'the redis state store needs the redis package: pip install "quarry-core[redis]"'
                ) from exc
            self._client = aioredis.Redis.from_url(
                self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s
            )
            self._loop = loop
            self._script = self._client.register_script(LUA_APPLY)
        return self._client

    async def apply_builtin(
        self, pool: ProxyPool, request: StrategyRequest, now_ms: int, rand: int
    ) -> tuple[OperationResult, dict[str, Any]]:
        """Run a built-in strategy atomically as one Lua script; returns the result and the computed state
        (stored only on commit)."""
        from redis.exceptions import RedisError

        self._get_client()
        try:
            raw = await self._script(keys=[self.key(pool)], args=lua_arguments(pool, request, now_ms, rand))
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc
        data = json.loads(raw)
        state = data.pop("state")
        return OperationResult(**data), state

    async def update(self, pool: ProxyPool, fn: Callable[[Any], tuple[R, dict[str, Any] | None]]) -> R:
        """``WATCH`` the key, read, apply ``fn``, ``MULTI``/``SET``/``EXEC``; retried up to 10 times on conflict."""
        from redis.exceptions import RedisError, WatchError

        client = self._get_client()
        key = self.key(pool)
        try:
            async with client.pipeline(transaction=True) as pipe:
                for _ in range(WATCH_TRIES):
                    try:
                        await pipe.watch(key)
                        result, new_state = fn(_decode(await pipe.get(key)))
                        if new_state is None:
                            await pipe.unwatch()  # type: ignore[no-untyped-call]
                            return result
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(key, _encode(new_state))
                        await pipe.execute()
                        return result
                    except WatchError:
                        continue
                    finally:
                        await pipe.reset()  # type: ignore[no-untyped-call]
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc
        raise ProxyStateStoreError(f"redis state store: {key} changed concurrently {WATCH_TRIES} times; giving up")

    async def read(self, pool: ProxyPool) -> Any:
        """The stored state or ``None``."""
        from redis.exceptions import RedisError

        client = self._get_client()
        try:
            return _decode(await client.get(self.key(pool)))
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
