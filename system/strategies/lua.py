"""The `lua` strategy: one server-side script checks buyer and stock, decrements and logs the order, atomically.

One round trip per purchase (EVALSHA; redis-py's Script reloads on NOSCRIPT, e.g. after a Redis
restart without persistence). The script also checks that the product's strategy is still `lua`,
so a worker's cached meta can never route a purchase of a reset product through the wrong path.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from flashlab.system.backend import arm
from flashlab.system.backend import execute_packed
from flashlab.system.backend import pack_bulk
from flashlab.system.keys import ProductKeys
from flashlab.system.keys import order_id
from flashlab.system.strategies.strategy import ALREADY
from flashlab.system.strategies.strategy import SOLD_OUT
from flashlab.system.strategies.strategy import STALE
from flashlab.system.strategies.strategy import Outcome
from flashlab.system.strategies.strategy import ProductMeta
from flashlab.system.strategies.strategy import Purchase
from flashlab.system.strategies.strategy import PurchaseStrategy

# The sale itself, shared by the `lua` and `queue` buy scripts: take a unit, mark the buyer, log
# the order. Needs KEYS = ProductKeys.sale() (then any others), ARGV[1] = user, `t` = TIME.
# Returns {seq, remaining}. The order id format must stay in sync with
# flashlab.system.keys.order_id ("o-<seq>").
SELL_LUA = """
local remaining = redis.call('DECR', KEYS[2])
redis.call('SADD', KEYS[3], ARGV[1])
local seq = redis.call('INCR', KEYS[4])
local ts_ms = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
redis.call('XADD', KEYS[5], '*', 'order_id', 'o-' .. seq, 'user_id', ARGV[1], 'ts_ms', ts_ms)
return {seq, remaining}
"""

# KEYS: ProductKeys.sale()   ARGV: user_id
# Returns {seq, remaining} on success, {-1} already purchased, {-2} sold out, {-3} not lua / no product.
BUY_LUA = (
    """
if redis.call('HGET', KEYS[1], 'strategy') ~= 'lua' then return {-3} end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return {-1} end
local stock = tonumber(redis.call('GET', KEYS[2]) or '0')
if stock == nil or stock <= 0 then return {-2} end
local t = redis.call('TIME')
"""
    + SELL_LUA
)

# The refusals every sale script answers with (the queue adds its own).
SALE_CODES = {-1: ALREADY, -2: SOLD_OUT, -3: STALE}


def sale_reply(reply: list[Any], codes: dict[int, Purchase] = SALE_CODES) -> Purchase:
    """A sale script's reply as a Purchase: {seq, remaining}, or a negative refusal code."""
    head = int(reply[0])
    if head < 0:
        return codes[head]
    return Purchase(Outcome.ok, order_id(head), int(reply[1]))


class LuaStrategy(PurchaseStrategy):
    name = "lua"
    rechecks_strategy = True  # every script starts by checking meta's strategy

    def __init__(self, redis: aioredis.Redis) -> None:
        super().__init__(redis)
        self._script = redis.register_script(BUY_LUA)
        # product id -> the packed `EVALSHA sha 5 <keys>` prefix; only the user id varies.
        self._prefix: dict[str, bytes] = {}

    def _packed_prefix(self, keys: ProductKeys) -> bytes:
        prefix = self._prefix.get(keys.product_id)
        if prefix is None:
            prefix = b"*9\r\n" + pack_bulk(
                b"EVALSHA", self._script.sha.encode(), b"5", *(k.encode() for k in keys.sale())
            )
            if len(self._prefix) < 10_000:  # products come from admin resets; bound anyway
                self._prefix[keys.product_id] = prefix
        return prefix

    async def buy(self, keys: ProductKeys, user_id: str, meta: ProductMeta) -> Purchase:
        arm()  # the single round trip is the write
        user = user_id.encode()
        try:
            reply = await execute_packed(self.redis, self._packed_prefix(keys) + pack_bulk(user))
        except NoScriptError:
            # Script cache empty (Redis restarted): redis-py's Script loads it and retries once.
            reply = await self._script(keys=keys.sale(), args=[user_id])
        return sale_reply(reply)
