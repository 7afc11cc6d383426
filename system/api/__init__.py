"""The flash-sale HTTP API (docs/CONTRACT.md): one worker's FastAPI app, one job per module.

Run by the supervisor as `uvicorn flashlab.system.api.app:create_app --factory ...`, configured
from the FLASHLAB_* environment (`flashlab.system.settings`). The modules, top to bottom; each
imports only modules below it (an import-linter contract in pyproject.toml checks it):

| module | its one job |
|---|---|
| `app` | the app factory: settings, the service, handlers, routes and the fast lane wired together |
| `routes` | the HTTP routes: a request to the service, its answer to a Response, in OpenAPI order |
| `edge` | the ASGI fast lane: metrics for every answer, `POST /api/v1/shop/buy` without FastAPI |
| `exception_handlers` | every exception FastAPI or a route raises, as the contract's ErrorBody |
| `openapi` | the routes' OpenAPI documentation (bodies with inlined `$ref`s, headers, errors) |
| `buy` | the purchase endpoint without a framework, shared by the fast lane and the route |
| `service` | `ShopService`, the domain: sell, queue, reset and read products (no HTTP types) |
| `replies` | what is answered: `Reply`, the error replies, and sending one |
| `parsing` | reading a request: body limits, JSON, the buy and reset bodies, user, address |
| `errors` | the request failures answered 4xx, 429 or 503, never 500 |

Performance notes, because the buy path is benchmarked against /healthz through the same nginx:
- the buy route parses its own body with orjson and checks it by hand (same rules as
  `contract.BuyRequest`, which documents it in OpenAPI) instead of FastAPI body injection;
- answers are pre-serialized `Response`s, so FastAPI does no response-model work;
- metrics are recorded by one pure-ASGI middleware (no BaseHTTPMiddleware task overhead).
Every failure maps to an `ErrorBody` with a `code`; exception handlers make a 500 unreachable
for any input (a last-resort handler exists but is logged as a bug).
"""
