"""pg-shop: a small flash-sale backend on PostgreSQL (FastAPI + asyncpg).

Written the way a user would write their shop, independent of flashlab. Run it with
``python app.py``; configuration comes from the environment (see README.md):

    PORT            required, the HTTP port
    HOST            default 127.0.0.1
    DATABASE_URL    default postgresql://shop@127.0.0.1:5432/postgres
    MODE            atomic (default) | naive
    POOL_SIZE       default 20
    NAIVE_DELAY_MS  default 5, the pause between reading and writing the stock in naive mode
    DB_TIMEOUT_S    default 10, the bound on connecting, waiting for a pooled connection and a query
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import sys
import time
from typing import Annotated
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.responses import Response
from pydantic import AfterValidator
from pydantic import BaseModel
from pydantic import Field

log = logging.getLogger("pg-shop")

MODES = ("naive", "atomic")
STARTUP_WAIT_S = 30.0
SCHEMA_LOCK = 7_310_001  # advisory lock key: one process creates the schema at a time

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id    text PRIMARY KEY,
    stock int  NOT NULL,
    name  text
);
CREATE TABLE IF NOT EXISTS orders (
    id         bigserial PRIMARY KEY,
    product_id text NOT NULL REFERENCES products(id),
    customer   text NOT NULL,
    created_at timestamptz DEFAULT now()
);
-- Not unique on purpose: naive mode must be able to sell twice to one customer. Atomic mode
-- checks for an earlier order while it holds the product row's lock.
CREATE INDEX IF NOT EXISTS orders_product_customer ON orders (product_id, customer);
"""


class Settings:
    def __init__(self, env: dict[str, str]) -> None:
        if not env.get("PORT"):
            raise SystemExit("pg-shop: PORT is required")
        self.port = int(env["PORT"])
        self.host = env.get("HOST", "127.0.0.1")
        self.database_url = env.get("DATABASE_URL", "postgresql://shop@127.0.0.1:5432/postgres")
        self.mode = env.get("MODE", "atomic")
        if self.mode not in MODES:
            raise SystemExit(f"pg-shop: MODE must be one of {', '.join(MODES)}, got {self.mode!r}")
        self.pool_size = int(env.get("POOL_SIZE", "20"))
        self.naive_delay_s = float(env.get("NAIVE_DELAY_MS", "5")) / 1000.0
        self.db_timeout_s = float(env.get("DB_TIMEOUT_S", "10"))


# -- the errors that mean "the database is not there right now" -----------------------------

DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connect, pool acquire or command timeout (asyncio.TimeoutError on 3.11)
    asyncpg.InterfaceError,  # ConnectionDoesNotExistError: closed in the middle of an operation
    # "cannot switch to state 15; another operation (2) is in progress": the pool's reset of a
    # connection that died mid-query (asyncpg issue #784); the pool has terminated it already.
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin/crash shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections
)


class DatabaseUnavailable(Exception):
    pass


# -- request and answer models ---------------------------------------------------------------


def _storable(value: str) -> str:
    """Text PostgreSQL can store: no NUL, no lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode") from exc
    return value


Text = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_storable)]


class OrderRequest(BaseModel):
    sku: Text
    customer: Text


class Order(BaseModel):
    id: int
    sku: str
    customer: str


class OrderCreated(BaseModel):
    order: Order
    stock_left: int


class Product(BaseModel):
    sku: str
    stock: int


class Problem(BaseModel):
    detail: str


class Ok(BaseModel):
    ok: bool


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail})


def _example(detail: str) -> dict[str, Any]:
    return {"application/json": {"example": {"detail": detail}}}


UNAVAILABLE_RESPONSE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": Problem,
        "description": "The database is unreachable, restarting or too slow.",
        "content": _example("database unavailable"),
    }
}
NO_PRODUCT_RESPONSE: dict[int | str, dict[str, Any]] = {
    404: {
        "model": Problem,
        "description": "There is no product with this sku.",
        "content": _example("no such product"),
    }
}


# -- the database ----------------------------------------------------------------------------


class Shop:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None

    async def prepare(self) -> None:
        """Before serving: wait (bounded) for the database, then create the schema if missing.
        The advisory lock makes this safe when several processes start at once."""
        s = self.settings
        deadline = time.monotonic() + STARTUP_WAIT_S
        waited = False
        while True:
            try:
                con = await asyncpg.connect(s.database_url, timeout=s.db_timeout_s)
                break
            except DB_UNAVAILABLE as exc:
                if time.monotonic() >= deadline:
                    raise SystemExit(
                        f"pg-shop: database not reachable after {STARTUP_WAIT_S:.0f} s "
                        f"({s.database_url}): {type(exc).__name__}: {exc}"
                    ) from None
                waited = True
                await asyncio.sleep(0.25)
        if waited:
            log.info(
                "database reachable after %.1f s", STARTUP_WAIT_S - (deadline - time.monotonic())
            )
        try:
            async with con.transaction():
                await con.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
                await con.execute(SCHEMA)
        finally:
            await con.close()

    async def open(self) -> None:
        s = self.settings
        self.pool = await asyncpg.create_pool(
            s.database_url,
            min_size=s.pool_size,
            max_size=s.pool_size,
            timeout=s.db_timeout_s,  # connect timeout
            command_timeout=s.db_timeout_s,
        )

    async def close(self) -> None:
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pool.close(), 5)

    @contextlib.asynccontextmanager
    async def connection(self):
        assert self.pool is not None
        try:
            async with self.pool.acquire(timeout=self.settings.db_timeout_s) as con:
                yield con
        except DB_UNAVAILABLE as exc:
            log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
            raise DatabaseUnavailable() from exc

    async def ping(self) -> None:
        async with self.connection() as con:
            await con.fetchval("SELECT 1", timeout=2)

    async def product(self, sku: str) -> int | None:
        async with self.connection() as con:
            return await con.fetchval("SELECT stock FROM products WHERE id = $1", sku)

    async def buy_naive(self, sku: str, customer: str) -> JSONResponse | OrderCreated:
        """Check, pause, write: separate autocommit statements, nothing held in between."""
        async with self.connection() as con:
            stock = await con.fetchval("SELECT stock FROM products WHERE id = $1", sku)
        if stock is None:
            return _problem(404, "no such product")
        if stock <= 0:
            return _problem(409, "sold out")
        async with self.connection() as con:
            ordered = await con.fetchval(
                "SELECT 1 FROM orders WHERE product_id = $1 AND customer = $2 LIMIT 1",
                sku,
                customer,
            )
        if ordered:
            return _problem(409, "already ordered")
        await asyncio.sleep(self.settings.naive_delay_s)
        async with self.connection() as con:
            await con.execute("UPDATE products SET stock = $2 WHERE id = $1", sku, stock - 1)
        async with self.connection() as con:
            order_id = await con.fetchval(
                "INSERT INTO orders (product_id, customer) VALUES ($1, $2) RETURNING id",
                sku,
                customer,
            )
        return OrderCreated(
            order=Order(id=order_id, sku=sku, customer=customer), stock_left=stock - 1
        )

    async def buy_atomic(self, sku: str, customer: str) -> JSONResponse | OrderCreated:
        """One transaction; the conditional UPDATE locks the product row until commit, so
        buyers of one product go one at a time from there and the "already ordered" check
        sees every committed order."""
        async with self.connection() as con:
            try:
                async with con.transaction():
                    left = await con.fetchval(
                        "UPDATE products SET stock = stock - 1 WHERE id = $1 AND stock > 0 "
                        "RETURNING stock",
                        sku,
                    )
                    if left is None:
                        exists = await con.fetchval("SELECT 1 FROM products WHERE id = $1", sku)
                        raise (
                            _Refused(409, "sold out")
                            if exists
                            else _Refused(404, "no such product")
                        )
                    ordered = await con.fetchval(
                        "SELECT 1 FROM orders WHERE product_id = $1 AND customer = $2 LIMIT 1",
                        sku,
                        customer,
                    )
                    if ordered:
                        raise _Refused(409, "already ordered")  # rolls the decrement back
                    order_id = await con.fetchval(
                        "INSERT INTO orders (product_id, customer) VALUES ($1, $2) RETURNING id",
                        sku,
                        customer,
                    )
            except _Refused as refused:
                return _problem(refused.status, refused.detail)
        return OrderCreated(order=Order(id=order_id, sku=sku, customer=customer), stock_left=left)


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


# -- the HTTP app ----------------------------------------------------------------------------


def create_app(settings: Settings, shop: Shop | None = None) -> FastAPI:
    shop = shop or Shop(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        await shop.open()
        log.info("pg-shop ready: mode=%s pool=%d", settings.mode, settings.pool_size)
        try:
            yield
        finally:
            await shop.close()

    app = FastAPI(
        title="pg-shop",
        version="1.0.0",
        description="A flash-sale shop on PostgreSQL: one order per customer and product, "
        "while stock lasts.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own 422, except that its UTF-8 rendering fails on a lone surrogate
        # ("\ud800") echoed back as the input; then the same body is sent with ASCII escapes.
        try:
            return await request_validation_exception_handler(request, exc)
        except UnicodeEncodeError:
            body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
            return Response(body, status_code=422, media_type="application/json")

    @app.exception_handler(DatabaseUnavailable)
    async def _unavailable(_request: Request, _exc: DatabaseUnavailable) -> JSONResponse:
        return _problem(503, "database unavailable")

    @app.get(
        "/healthz", response_model=Ok, summary="The process is up (does not touch the database)"
    )
    async def healthz() -> Ok:
        return Ok(ok=True)

    @app.get(
        "/ready",
        response_model=Ok,
        summary="The database answers SELECT 1",
        responses=UNAVAILABLE_RESPONSE,
    )
    async def ready() -> Ok:
        await shop.ping()
        return Ok(ok=True)

    @app.get(
        "/products/{sku}",
        response_model=Product,
        summary="A product's stock",
        responses={**NO_PRODUCT_RESPONSE, **UNAVAILABLE_RESPONSE},
    )
    async def get_product(sku: str) -> Product | JSONResponse:
        try:
            _storable(sku)
        except ValueError:
            return _problem(404, "no such product")  # no such text can be a product id
        stock = await shop.product(sku)
        if stock is None:
            return _problem(404, "no such product")
        return Product(sku=sku, stock=stock)

    buy = shop.buy_atomic if settings.mode == "atomic" else shop.buy_naive

    @app.post(
        "/orders",
        status_code=201,
        response_model=OrderCreated,
        summary="Order one unit of a product",
        responses={
            201: {"description": "Ordered; stock_left is the stock after this order."},
            **NO_PRODUCT_RESPONSE,
            409: {
                "model": Problem,
                "description": 'Refused: "sold out" (no stock left) or "already ordered" '
                "(this customer already has an order for this product).",
                "content": {
                    "application/json": {
                        "examples": {
                            "sold out": {"value": {"detail": "sold out"}},
                            "already ordered": {"value": {"detail": "already ordered"}},
                        }
                    }
                },
            },
            **UNAVAILABLE_RESPONSE,
        },
    )
    async def create_order(body: OrderRequest) -> OrderCreated | JSONResponse:
        return await buy(body.sku, body.customer)

    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings(dict(os.environ))
    shop = Shop(settings)
    try:
        asyncio.run(shop.prepare())
    except SystemExit as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    uvicorn.run(
        create_app(settings, shop),
        host=settings.host,
        port=settings.port,
        loop=loop,
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    sys.exit(main())
