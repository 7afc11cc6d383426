"""`ProxyControl`: the synchronous client of the proxy's control API, used by faults and tests.

It imports neither the server nor aiohttp: a fault that adds a toxic loads only this and the
toxics' models.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from flashlab.chaos.proxy.toxics import Direction


class ProxyControl:
    """A small synchronous client for the control API (httpx)."""

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout_s)

    def add(self, name: str, type: str, direction: Direction = "both", **params: Any) -> dict:
        body = {"name": name, "type": type, "direction": direction, "params": params}
        r = self.http.post("/toxics", json=body)
        if r.status_code != 201:
            raise RuntimeError(f"proxy refused toxic {name!r}: {r.status_code} {r.text}")
        return r.json()

    def remove(self, name: str) -> bool:
        r = self.http.delete(f"/toxics/{name}")
        if r.status_code not in (204, 404):
            r.raise_for_status()
        return r.status_code == 204

    def clear(self) -> None:
        self.http.delete("/toxics").raise_for_status()

    def toxics(self) -> list[dict]:
        r = self.http.get("/toxics")
        r.raise_for_status()
        return r.json()

    def stats(self) -> dict[str, Any]:
        r = self.http.get("/stats")
        r.raise_for_status()
        return r.json()

    def wait_ready(self, timeout_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.stats()
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self.http.close()
