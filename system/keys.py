"""The Redis schema: every key the API writes and the lab reads for ground truth.

All keys of one product share a hash tag `{product}` so they would land in one Redis Cluster slot.
- stock      STRING  int, units left
- buyers     SET     user ids holding a unit
- orders     STREAM  append-only order log, entry fields: order_id, user_id, ts_ms (server time)
- meta       HASH    strategy, stock_initial, price_cents, settings (JSON of the strategy's Settings)
- lock       STRING  pessimistic lock token (strategy `lock`)
- order_seq  STRING  INCR counter behind order ids
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "fl"


@dataclass(frozen=True)
class ProductKeys:
    product_id: str

    def _k(self, name: str) -> str:
        return f"{PREFIX}:{{{self.product_id}}}:{name}"

    @property
    def stock(self) -> str:
        return self._k("stock")

    @property
    def buyers(self) -> str:
        return self._k("buyers")

    @property
    def orders(self) -> str:
        return self._k("orders")

    @property
    def meta(self) -> str:
        return self._k("meta")

    @property
    def lock(self) -> str:
        return self._k("lock")

    @property
    def order_seq(self) -> str:
        return self._k("order_seq")

    def all(self) -> list[str]:
        return [self.stock, self.buyers, self.orders, self.meta, self.lock, self.order_seq]


def order_id(seq: int) -> str:
    """Order ids are `o-<seq>`; seq comes from INCR order_seq, so ids are unique per product."""
    return f"o-{seq}"
