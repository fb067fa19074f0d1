"""Getting the simulated serials into the service before they provision: through the admin API,
or straight through the appliances service on the database the settings name."""

from __future__ import annotations

from typing import Any

from epicura.config import Settings
from epicura.simulator.cloud import Cloud
from epicura.simulator.fleet import Importer


def api_importer(api_url: str, email: str, password: str) -> Importer:
    """`POST /admin/appliances/import` as an admin (logged in once, on first use)."""
    token: list[str] = []

    async def run(rows: list[dict[str, str]]) -> dict[str, Any]:
        cloud = Cloud(api_url)
        try:
            if not token:
                token.append(await cloud.admin_login(email, password))
            return await cloud.import_serials(token[0], rows)
        finally:
            await cloud.aclose()

    return run


def database_importer(settings: Settings) -> Importer:
    """The same import the admin route runs, in a transaction of our own on the service's
    database (the embedded SQLite file when DATABASE_URL is unset)."""

    async def run(rows: list[dict[str, str]]) -> dict[str, Any]:
        from epicura.appliances import service
        from epicura.kit.runtime import Runtime

        runtime = Runtime.build(settings)
        try:
            async with runtime.db.transaction() as session:
                result = await service.import_appliances(runtime, session, rows)
            return result if isinstance(result, dict) else {"result": str(result)}
        finally:
            await runtime.close()

    return run
