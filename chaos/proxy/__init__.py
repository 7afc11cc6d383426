"""The TCP fault proxy: forwards bytes between API workers and Redis, with toxics switchable at run time.

Run it as ``python -m flashlab.chaos.proxy --listen 127.0.0.1:P --upstream 127.0.0.1:R --control 127.0.0.1:C``.
One module per job; this package imports none of them, so a fault that only drives the proxy
(through `control`) never loads the server:

    toxics       the toxics: their parameter models (the one home of bounds and defaults)
    server       the forwarding server that applies them to every chunk
    control_api  the control HTTP API the proxy process serves (aiohttp.web)
    control      `ProxyControl`, the synchronous client of that API (faults, tests)
    cli          the command line: parse the addresses, serve until SIGTERM/SIGINT

Why hand-written instead of Shopify's toxiproxy: toxiproxy is not packaged in Debian and no image
registry is reachable, and the Python packages on PyPI are only clients for that Go server. The
proxy needs ~300 lines of asyncio; aiohttp (already a dependency) serves the control API.
"""
