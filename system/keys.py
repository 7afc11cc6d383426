"""The Redis schema: every key the API writes and the lab reads for ground truth.

All keys of one product share a hash tag `{product}` so they would land in one Redis Cluster slot.
- stock      STRING  int, units left
- buyers     SET     user ids holding a unit
- orders     STREAM  append-only order log, entry fields: order_id, user_id, ts_ms (server time)
- meta       HASH    strategy, stock_initial, price_cents, settings (JSON of the strategy's Settings)
- lock       STRING  pessimistic lock token (strategy `lock`)
- order_seq  STRING  INCR counter behind order ids
- q_seq      STRING  waiting room (strategy `queue`): tickets issued so far (INCR; ticket n = n-th)
- q_tickets  HASH    waiting room: user id -> that user's current ticket
- q_users    HASH    waiting room: ticket -> user id
- q_head     STRING  waiting room: the admission frontier (tickets <= head have been admitted)
- q_admitted ZSET    waiting room: admitted, unused tickets scored by expiry (server ms)
- rl:*       HASH    rate-limit token buckets (tokens, ts_ms) per user / per IP
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

    @property
    def q_seq(self) -> str:
        return self._k("q_seq")

    @property
    def q_tickets(self) -> str:
        return self._k("q_tickets")

    @property
    def q_users(self) -> str:
        return self._k("q_users")

    @property
    def q_head(self) -> str:
        return self._k("q_head")

    @property
    def q_admitted(self) -> str:
        return self._k("q_admitted")

    def sale(self) -> list[str]:
        """KEYS[1..5] of every sale script (lua, queue): meta, stock, buyers, order_seq, orders."""
        return [self.meta, self.stock, self.buyers, self.order_seq, self.orders]

    def queue(self) -> list[str]:
        return [self.q_seq, self.q_tickets, self.q_users, self.q_head, self.q_admitted]

    def bucket(self, kind: str, who: str) -> str:
        """The token bucket of one user (`kind` "u") or client IP ("ip") for this product."""
        return self._k(f"rl:{kind}:{who}")

    def all(self) -> list[str]:
        return [self.stock, self.buyers, self.orders, self.meta, self.lock, self.order_seq]


def order_id(seq: int) -> str:
    """Order ids are `o-<seq>`; seq comes from INCR order_seq, so ids are unique per product."""
    return f"o-{seq}"
