"""The per-user and per-IP rate limit: token buckets in one Lua script, in front of any strategy's buy.

Switched on per product by the reset's `rateLimit` (contract.RateLimit), stored in the product's
meta. Both buckets are checked before either is spent, atomically, with Redis server time, so
workers share one view and a clock-skewed worker cannot mint tokens. Idle buckets expire.
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from flashlab.core.contract import RateLimit
from flashlab.system.keys import ProductKeys

# KEYS: one bucket per limit; ARGV: rate_per_s, burst for each key in order.
# Returns 0 (tokens taken from every bucket) or the ms until the emptiest bucket has a token.
BUCKET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait, level = 0, {}
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(b[1]) or burst
  local ts = tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(now - ts, 0) * rate / 1000)
  if tokens < 1 then wait = math.max(wait, math.ceil((1 - tokens) * 1000 / rate)) end
  level[i] = tokens
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('HSET', key, 'tokens', tostring(level[i] - 1), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
end
return 0
"""


class RateLimiter:
    """One per worker. `wait_ms` spends a token from each switched-on bucket, or says how long
    to wait (nothing spent) when one of them is empty."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._script = redis.register_script(BUCKET_LUA)
        self._parsed: dict[str, RateLimit] = {}

    def limit_of(self, raw: str) -> RateLimit | None:
        if not raw:
            return None
        limit = self._parsed.get(raw)
        if limit is None:
            limit = RateLimit.model_validate_json(raw)
            if len(self._parsed) < 1_000:  # one entry per distinct reset
                self._parsed[raw] = limit
        return limit if limit.enabled else None

    async def wait_ms(self, keys: ProductKeys, limit: RateLimit, user_id: str, ip: str) -> int:
        buckets: list[str] = []
        args: list[float | int] = []
        if limit.per_user_rate_per_s > 0:
            buckets.append(keys.bucket("u", user_id))
            args += [limit.per_user_rate_per_s, limit.per_user_burst]
        if limit.per_ip_rate_per_s > 0 and ip:
            buckets.append(keys.bucket("ip", ip))
            args += [limit.per_ip_rate_per_s, limit.per_ip_burst]
        if not buckets:
            return 0
        return int(await self._script(keys=buckets, args=args))


def retry_after_s(wait_ms: int) -> str:
    """The Retry-After header value: whole seconds, at least 1 (HTTP has no fractions)."""
    return str(max(1, math.ceil(wait_ms / 1000)))
