"""The service's HTTPS API as the simulator uses it: the Device API (`rest-api.md`), the public
recipe reads, and the admin import of factory serials."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx2

API_PREFIX = "/api/v1"
TOKEN_MARGIN_S = 300
MAX_THROTTLED_RETRIES = 20
MAX_RETRY_AFTER_S = 60.0


class CloudError(Exception):
    """A call the simulator cannot go on without failed; the message says which and why."""

    def __init__(self, what: str, response: httpx2.Response | None = None) -> None:
        detail = ""
        if response is not None:
            detail = f": HTTP {response.status_code} {response.text[:300]}"
        super().__init__(f"{what}{detail}")
        self.status = response.status_code if response is not None else None


def api_base(url: str) -> str:
    """`http://host:3000` or `http://host:3000/api/v1` → the latter."""
    url = url.rstrip("/")
    return url if url.endswith(API_PREFIX) else url + API_PREFIX


@dataclass
class DeviceToken:
    value: str
    expires_at: float

    @property
    def fresh(self) -> bool:
        return time.monotonic() < self.expires_at - TOKEN_MARGIN_S


class Cloud:
    """One HTTP client for the whole fleet (connection pooling); per-device calls take a token."""

    def __init__(self, api_url: str, *, timeout_s: float = 15.0,
                 client: httpx2.AsyncClient | None = None) -> None:
        self.client = client or httpx2.AsyncClient(base_url=api_base(api_url), timeout=timeout_s)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _post_patiently(self, path: str, body: Any) -> httpx2.Response:
        """POST, waiting out 429s as `Retry-After` says: a fleet provisioning from one address
        meets the per-address limits of the Device API."""
        for _ in range(MAX_THROTTLED_RETRIES):
            reply = await self.client.post(path, json=body)
            if reply.status_code != 429:
                return reply
            try:
                wait = float(reply.headers.get("retry-after", "1"))
            except ValueError:
                wait = 1.0
            await asyncio.sleep(min(max(wait, 0.1), MAX_RETRY_AFTER_S))
        return reply

    # --- admin ---------------------------------------------------------------------------
    async def admin_login(self, email: str, password: str) -> str:
        reply = await self.client.post("/auth/login", json={
            "email": email, "password": password, "session_name": "epicura simulate"})
        if reply.status_code != 200:
            raise CloudError("admin login failed", reply)
        return str(reply.json()["access_token"])

    async def import_serials(self, admin_token: str, rows: list[dict[str, str]]) -> dict[str, Any]:
        reply = await self.client.post("/admin/appliances/import", json=rows,
                                       headers=_bearer(admin_token))
        if reply.status_code not in (200, 201):
            raise CloudError("importing serials failed", reply)
        result: dict[str, Any] = reply.json()
        return result

    # --- device --------------------------------------------------------------------------
    async def provision(self, *, serial: str, factory_secret: str, model: str,
                        hw_revision: str, firmware_version: str) -> dict[str, Any]:
        reply = await self._post_patiently("/device/provision", {
            "serial": serial, "factory_secret": factory_secret, "model": model,
            "hw_revision": hw_revision, "firmware_version": firmware_version})
        if reply.status_code not in (200, 201):
            raise CloudError(f"provisioning {serial} failed", reply)
        result: dict[str, Any] = reply.json()
        return result

    async def device_token(self, device_id: str, device_secret: str) -> DeviceToken:
        reply = await self._post_patiently("/device/token", {
            "device_id": device_id, "device_secret": device_secret})
        if reply.status_code != 200:
            raise CloudError(f"device token for {device_id} refused", reply)
        body = reply.json()
        return DeviceToken(str(body["access_token"]),
                           time.monotonic() + float(body.get("expires_in", 3600)))

    async def device_get(self, token: str, path: str,
                         params: dict[str, Any] | None = None) -> httpx2.Response:
        return await self.client.get(path, params=params, headers=_bearer(token))

    async def device_post(self, token: str, path: str, body: Any) -> httpx2.Response:
        return await self.client.post(path, json=body, headers=_bearer(token))

    # --- recipes (public reads) -----------------------------------------------------------
    async def published_recipes(self, limit: int) -> list[dict[str, Any]]:
        """Summaries of public published recipes, newest first, up to `limit`."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(found) < limit:
            params: dict[str, Any] = {"limit": min(100, limit - len(found)), "sort": "newest"}
            if cursor:
                params["cursor"] = cursor
            reply = await self.client.get("/recipes", params=params)
            if reply.status_code != 200:
                raise CloudError("listing recipes failed", reply)
            page = reply.json()
            found.extend(page.get("items", []))
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return found

    async def recipe_version(self, recipe_id: str, version: int | None,
                             token: str | None = None) -> dict[str, Any] | None:
        """`{recipe_id, version, content}` or None when the recipe cannot be read."""
        path = f"/recipes/{recipe_id}" + (f"/versions/{version}" if version else "")
        reply = await self.client.get(path, headers=_bearer(token) if token else None)
        if reply.status_code != 200:
            return None
        body = reply.json()
        return {"recipe_id": recipe_id,
                "version": int(body.get("version") or body.get("current_version") or 1),
                "content": body["content"]}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
