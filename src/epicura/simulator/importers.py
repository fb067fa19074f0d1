"""Getting the simulated serials into the service before they provision: through the admin API,
or straight through the appliances service on the database the settings name."""

from __future__ import annotations

from typing import Any

from epicura.config import Settings
from epicura.simulator.cloud import Cloud, CloudError
from epicura.simulator.fleet import Importer


def api_importer(email: str, password: str) -> Importer:
    """`POST /admin/appliances/import` as an admin (logged in once, on first use)."""
    token: list[str] = []

    async def run(cloud: Cloud, rows: list[dict[str, str]]) -> dict[str, Any]:
        if not token:
            token.append(await cloud.admin_login(email, password))
        return await cloud.import_serials(token[0], rows)

    return run


def database_importer(settings: Settings) -> Importer:
    """The admin route's import, run in a transaction of our own on the service's database (the
    embedded SQLite file when DATABASE_URL is unset). It is audited as the oldest active admin
    account's, from "epicura simulate": an import needs an accountable admin."""

    async def run(cloud: Cloud, rows: list[dict[str, str]]) -> dict[str, Any]:
        from sqlalchemy import select

        from epicura.appliances import importer
        from epicura.auth.models import ROLE_ADMIN, User
        from epicura.kit.runtime import Runtime
        from epicura.migrate import upgrade_to_head

        if settings.embedded:
            await upgrade_to_head(settings)
        runtime = Runtime.build(settings)
        try:
            async with runtime.db.transaction() as session:
                admin = (await session.execute(
                    select(User).where(User.role == ROLE_ADMIN, User.is_active)
                    .order_by(User.created_at).limit(1))).scalar_one_or_none()
                if admin is None:
                    raise CloudError("no admin account to import the serials as: run `epicura "
                                     "admin create`, or give --admin-email/--admin-password")
                result = await importer.import_rows(session, admin, rows, "epicura simulate")
            counts: dict[str, Any] = result.model_dump(mode="json", exclude={"rows"})
            return counts
        finally:
            await runtime.close()

    return run
