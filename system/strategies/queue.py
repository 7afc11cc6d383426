"""The `queue` strategy: a virtual waiting room in front of an atomic sale, all in Redis Lua.

An arriving shopper takes a ticket in arrival order (`POST /api/v1/shop/queue`). Tickets up to the
units left are admitted: each admission may buy within `admission_ttl_ms`; an admission that runs
out returns its slot, and the frontier moves on to the next tickets (rollover). Admission is
advanced lazily by every queue script (join, status, buy), so no timer process exists to fail.
Invariant kept by every script: admitted-and-unused tickets <= stock, so an admitted buyer never
meets "sold out". The buy itself is the `lua` strategy's sale (buyer check, DECR, order log).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from pydantic import Field

from flashlab.core.contract import QueueState
from flashlab.core.contract import QueueStatus
from flashlab.system.backend import arm
from flashlab.system.keys import ProductKeys
from flashlab.system.strategies.lua import SALE_CODES
from flashlab.system.strategies.lua import SELL_LUA
from flashlab.system.strategies.lua import sale_reply
from flashlab.system.strategies.strategy import NOT_FOUND
from flashlab.system.strategies.strategy import SOLD_OUT
from flashlab.system.strategies.strategy import STALE
from flashlab.system.strategies.strategy import Outcome
from flashlab.system.strategies.strategy import ProductMeta
from flashlab.system.strategies.strategy import Purchase
from flashlab.system.strategies.strategy import PurchaseStrategy
from flashlab.system.strategies.strategy import StrategySettings

# KEYS (all scripts): 1-5 ProductKeys.sale() (meta, stock, buyers, order_seq, orders),
#                     6 q_seq, 7 q_tickets, 8 q_users, 9 q_head, 10 q_admitted
# `advance` drops expired admissions, then admits tickets while units outnumber admissions.
_PRELUDE = """
if redis.call('HGET', KEYS[1], 'strategy') ~= 'queue' then return {-3} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[10], '-inf', now)
local stock = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local head = tonumber(redis.call('GET', KEYS[9]) or '0')
local function advance()
  local issued = tonumber(redis.call('GET', KEYS[6]) or '0')
  local n = math.min(stock - redis.call('ZCARD', KEYS[10]), issued - head)
  if n > 0 then
    for k = head + 1, head + n do redis.call('ZADD', KEYS[10], now + ttl, k) end
    head = head + n
    redis.call('SET', KEYS[9], head)
  end
end
-- {state, ticket, position, expires_in_ms}; states: 0 waiting 1 admitted 2 expired 3 purchased 4 sold out
local function status_of(ticket, user)
  if redis.call('SISMEMBER', KEYS[3], user) == 1 then return {3, ticket, 0, 0} end
  if ticket > head then
    if stock <= 0 then return {4, ticket, ticket - head, 0} end
    return {0, ticket, ticket - head, 0}
  end
  local exp = redis.call('ZSCORE', KEYS[10], ticket)
  if exp then return {1, ticket, 0, tonumber(exp) - now} end
  if stock <= 0 then return {4, ticket, 0, 0} end
  return {2, ticket, 0, 0}
end
"""

# ARGV: user, ttl. Joins (or refreshes) the user's ticket; an expired ticket rejoins at the back.
JOIN_LUA = (
    _PRELUDE
    + """
advance()
local ticket = tonumber(redis.call('HGET', KEYS[7], ARGV[1]) or '0')
if ticket > 0 then
  local st = status_of(ticket, ARGV[1])
  if st[1] ~= 2 then return st end
end
if stock <= 0 then return {-2} end
ticket = redis.call('INCR', KEYS[6])
redis.call('HSET', KEYS[7], ARGV[1], ticket)
redis.call('HSET', KEYS[8], ticket, ARGV[1])
advance()
return status_of(ticket, ARGV[1])
"""
)

# ARGV: ticket, ttl. One ticket's state; {-4} for a ticket never issued.
STATUS_LUA = (
    _PRELUDE
    + """
local user = redis.call('HGET', KEYS[8], ARGV[1])
if not user then return {-4} end
advance()
return status_of(tonumber(ARGV[1]), user)
"""
)

# ARGV: user, ttl. Sells one unit to an admitted user: {seq, remaining}, or
# {-1} already purchased, {-2} sold out, {-3} not a queue product, {-5} not admitted, {-6} expired.
# A walk-in (no ticket) while nobody waits and a slot is free is admitted on the spot: that is
# what joining would have done, so FIFO holds, and a quiet queue product buys like `lua`.
BUY_LUA = (
    _PRELUDE
    + """
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return {-1} end
advance()
if stock <= 0 then return {-2} end
local ticket = tonumber(redis.call('HGET', KEYS[7], ARGV[1]) or '0')
if ticket == 0 then
  local issued = tonumber(redis.call('GET', KEYS[6]) or '0')
  if issued > head or stock - redis.call('ZCARD', KEYS[10]) <= 0 then return {-5} end
  ticket = redis.call('INCR', KEYS[6])
  redis.call('HSET', KEYS[7], ARGV[1], ticket)
  redis.call('HSET', KEYS[8], ticket, ARGV[1])
  redis.call('SET', KEYS[9], ticket)
elseif redis.call('ZREM', KEYS[10], ticket) == 0 then
  if ticket <= head then return {-6} end
  return {-5}
end
"""
    + SELL_LUA
)

_STATES = {
    0: QueueState.waiting,
    1: QueueState.admitted,
    2: QueueState.expired,
    3: QueueState.purchased,
    4: QueueState.sold_out,
}
_BUY_CODES = {
    **SALE_CODES,
    -5: Purchase(Outcome.not_admitted),
    -6: Purchase(Outcome.admission_expired),
}


class QueueSettings(StrategySettings):
    # How long an admitted ticket may take to buy before its slot rolls to the next ticket.
    admission_ttl_ms: int = Field(default=5_000, ge=10, le=3_600_000)


class QueueStrategy(PurchaseStrategy):
    """The waiting room's three calls, each one Lua script over the sale's and the queue's keys.

    `join` hands out a ticket, `status` tells a ticket's state, and `buy` sells only to a ticket
    admitted less than `admission_ttl_ms` ago; every script first advances the admissions."""

    name = "queue"
    Settings = QueueSettings
    rechecks_strategy = True  # every script starts by checking meta's strategy
    waiting_room = True

    def __init__(self, redis: aioredis.Redis) -> None:
        super().__init__(redis)
        self._join = redis.register_script(JOIN_LUA)
        self._status = redis.register_script(STATUS_LUA)
        self._buy = redis.register_script(BUY_LUA)

    @staticmethod
    def _keys(keys: ProductKeys) -> list[str]:
        return [*keys.sale(), *keys.queue()]

    def _ttl(self, meta: ProductMeta) -> int:
        return int(self.settings_of(meta).admission_ttl_ms)

    async def buy(self, keys: ProductKeys, user_id: str, meta: ProductMeta) -> Purchase:
        arm()  # the single script call is the write
        reply = await self._buy(keys=self._keys(keys), args=[user_id, self._ttl(meta)])
        return sale_reply(reply, _BUY_CODES)

    async def join(
        self, keys: ProductKeys, user_id: str, meta: ProductMeta
    ) -> QueueStatus | Purchase:
        """Take (or refresh) the user's ticket; SOLD_OUT when no unit is left to queue for."""
        reply = await self._join(keys=self._keys(keys), args=[user_id, self._ttl(meta)])
        return _status(reply)

    async def status(
        self, keys: ProductKeys, ticket: int, meta: ProductMeta
    ) -> QueueStatus | Purchase:
        """One ticket's state; NOT_FOUND for a ticket never issued."""
        reply = await self._status(keys=self._keys(keys), args=[ticket, self._ttl(meta)])
        return _status(reply)


def _status(reply: Any) -> QueueStatus | Purchase:
    head = int(reply[0])
    if head == -2:
        return SOLD_OUT
    if head == -3:
        return STALE
    if head == -4:
        return NOT_FOUND
    return QueueStatus(
        ticket=int(reply[1]),
        state=_STATES[head],
        position=int(reply[2]),
        expires_in_ms=max(int(reply[3]), 0),
    )
