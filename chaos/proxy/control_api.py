"""The control HTTP API the proxy process serves (aiohttp.web): list, add and remove toxics, stats.

    GET    /toxics          -> [{name, type, direction, params}, ...]
    POST   /toxics          {name, type, direction?, params?} -> 201 the toxic
    DELETE /toxics/{name}   -> 204 (404 if unknown)
    DELETE /toxics          -> 204, removes every toxic
    GET    /stats           -> connections, bytes, resets, listen/upstream addresses

Toxics apply to live connections at the next chunk, so adding one mid-run acts at once.
Its client is `flashlab.chaos.proxy.control.ProxyControl`.
"""

from __future__ import annotations

from aiohttp import web

from flashlab.chaos.proxy.server import Proxy
from flashlab.chaos.proxy.toxics import parse_toxic


def control_app(proxy: Proxy) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/toxics")
    async def list_toxics(_: web.Request) -> web.Response:
        return web.json_response([t.to_dict() for t in proxy.toxics.values()])

    @routes.post("/toxics")
    async def add_toxic(request: web.Request) -> web.Response:
        try:
            toxic = parse_toxic(await request.json())
        except ValueError as exc:  # includes JSONDecodeError
            return web.json_response({"error": str(exc).splitlines()[0]}, status=400)
        try:
            proxy.add_toxic(toxic)
        except KeyError:
            return web.json_response({"error": f"toxic {toxic.name!r} exists"}, status=409)
        return web.json_response(toxic.to_dict(), status=201)

    @routes.delete("/toxics/{name}")
    async def remove_toxic(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not proxy.remove_toxic(name):
            return web.json_response({"error": f"no toxic {name!r}"}, status=404)
        return web.Response(status=204)

    @routes.delete("/toxics")
    async def clear_toxics(_: web.Request) -> web.Response:
        proxy.toxics.clear()
        return web.Response(status=204)

    @routes.get("/stats")
    async def stats(_: web.Request) -> web.Response:
        return web.json_response(proxy.stats_dict())

    app = web.Application()
    app.add_routes(routes)
    return app
