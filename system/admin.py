"""The lab's admin client for a running API (sync httpx): reset a product, read it, wait for readiness."""

from __future__ import annotations

import time

import httpx

from flashlab.core.contract import ADMIN_HEADER
from flashlab.core.contract import PRODUCT_PATH
from flashlab.core.contract import RESET_PATH
from flashlab.core.contract import ErrorBody
from flashlab.core.contract import Product
from flashlab.core.contract import ResetOk
from flashlab.core.contract import ResetRequest
from flashlab.core.errors import InfraError


class AdminError(InfraError, RuntimeError):
    """The API refused an admin call or could not be reached; the message says which and why."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AdminClient:
    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url, headers={ADMIN_HEADER: token}, timeout=timeout_s
        )

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _checked(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code == 200:
            return response
        try:
            err = ErrorBody.model_validate_json(response.content)
            detail, code = f"{err.code.value}: {err.message}", err.code.value
        except ValueError:
            detail, code = response.text[:200], None
        raise AdminError(
            f"{what} failed: HTTP {response.status_code} {detail}", response.status_code, code
        )

    def reset(self, request: ResetRequest) -> ResetOk:
        body = request.model_dump(mode="json", by_alias=True)
        try:
            response = self._client.post(RESET_PATH, json=body)
        except httpx.HTTPError as exc:
            raise AdminError(f"reset failed: {self.base_url} unreachable ({exc})") from exc
        return ResetOk.model_validate_json(self._checked(response, "reset").content)

    def product(self, product_id: str) -> Product:
        path = PRODUCT_PATH.format(product_id=product_id)
        try:
            response = self._client.get(path)
        except httpx.HTTPError as exc:
            raise AdminError(f"product failed: {self.base_url} unreachable ({exc})") from exc
        return Product.model_validate_json(self._checked(response, "product").content)

    def wait_ready(self, timeout_s: float = 30.0, interval_s: float = 0.1) -> None:
        """Poll /readyz until it answers 200 (Redis reachable through the API), or raise."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while True:
            try:
                response = self._client.get("/readyz", timeout=min(2.0, timeout_s))
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            if time.monotonic() >= deadline:
                raise AdminError(
                    f"{self.base_url}/readyz not ready after {timeout_s:.0f}s ({last})"
                )
            time.sleep(interval_s)
