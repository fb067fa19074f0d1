"""Factory import of serials (`POST /admin/appliances/import`): JSON or CSV rows of `serial,
model, hw_revision, factory_secret`, each validated on its own and reported on its own.

A serial already imported is skipped, never changed (its factory secret is the appliance's
proof of origin; a re-import must not replace it). Only SHA-256 of the factory secret is kept.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.appliances import repository
from epicura.appliances.models import IMPORTED
from epicura.appliances.provisioning import secret_digest
from epicura.appliances.schemas import (
    MAX_FACTORY_SECRET,
    MIN_FACTORY_SECRET,
    PROFILE_PART_PATTERN,
    ImportResult,
    ImportRowResult,
    normalise_serial,
    valid_serial,
)
from epicura.auth.models import User
from epicura.kit import audit, clock
from epicura.kit.errors import ErrorItem, UnsupportedMediaType, ValidationFailed
from epicura.kit.ids import uuid7

MAX_ROWS = 10_000
COLUMNS = ("serial", "model", "hw_revision", "factory_secret")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class CheckedRow:
    serial: str
    model: str
    hw_revision: str
    factory_secret: str


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[ErrorItem(loc=["body"], msg=message,
                                                       type="value_error")])


def parse_rows(content_type: str, body: bytes) -> list[Any]:
    """The uploaded rows, each still unchecked: a JSON array (or `{"rows": [...]}`), or CSV
    with a header row naming the columns."""
    media = content_type.split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _refuse("the body is not valid JSON") from exc
        if isinstance(data, dict) and set(data) == {"rows"}:
            data = data["rows"]
        if not isinstance(data, list):
            raise _refuse("send a JSON array of rows")
        rows = data
    elif media in ("text/csv", "application/csv"):
        rows = _csv_rows(body)
    else:
        raise UnsupportedMediaType("Send application/json or text/csv")
    if not rows:
        raise _refuse("no rows")
    if len(rows) > MAX_ROWS:
        raise _refuse(f"at most {MAX_ROWS} rows per import")
    return rows


def _csv_rows(body: bytes) -> list[Any]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse("CSV must be UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip().lower() for name in reader.fieldnames or ()]
    if sorted(header) != sorted(COLUMNS):
        raise _refuse("the CSV header must name exactly: " + ", ".join(COLUMNS))
    reader.fieldnames = header
    try:
        return [dict(row) for row in reader]
    except csv.Error as exc:
        raise _refuse(f"unreadable CSV: {exc}") from exc


def check_row(row: Any) -> CheckedRow | str:
    """The normalised row, or why it is refused."""
    if not isinstance(row, dict):
        return "not an object"
    missing = [name for name in COLUMNS if not isinstance(row.get(name), str)]
    if missing:
        return "missing or not text: " + ", ".join(missing)
    extra = sorted(set(row) - set(COLUMNS), key=str)
    if extra:
        return "unknown fields: " + ", ".join(str(name) for name in extra)
    serial = normalise_serial(row["serial"])
    if not valid_serial(serial):
        return "serial must be 3-64 letters, digits, '.', '_' or '-'"
    model, hw_revision = row["model"].strip().lower(), row["hw_revision"].strip().lower()
    for name, value in (("model", model), ("hw_revision", hw_revision)):
        if re.fullmatch(PROFILE_PART_PATTERN, value) is None:
            return f"{name} must be 1-40 lower-case letters, digits or '-'"
    secret = row["factory_secret"]
    if not MIN_FACTORY_SECRET <= len(secret) <= MAX_FACTORY_SECRET or _CONTROL.search(secret):
        return (f"factory_secret must be {MIN_FACTORY_SECRET}-{MAX_FACTORY_SECRET} printable "
                "characters")
    return CheckedRow(serial, model, hw_revision, secret)


async def import_rows(session: AsyncSession, admin: User, rows: Sequence[Any],
                      ip: str) -> ImportResult:
    results: list[ImportRowResult] = []
    fresh: dict[str, tuple[int, CheckedRow]] = {}
    for index, row in enumerate(rows, start=1):
        checked = check_row(row)
        if isinstance(checked, str):
            results.append(ImportRowResult(row=index, serial=_serial_of(row), result="invalid",
                                           reason=checked))
        elif checked.serial in fresh:
            results.append(ImportRowResult(row=index, serial=checked.serial, result="skipped",
                                           reason="duplicate of an earlier row"))
        else:
            fresh[checked.serial] = (index, checked)
    existing = await repository.existing_serials(session, list(fresh))
    now = clock.utcnow()
    inserted = await repository.insert_new(session, [
        _values(checked, now) for serial, (_i, checked) in fresh.items() if serial not in existing])
    for serial, (index, _checked) in fresh.items():
        if serial in inserted:
            results.append(ImportRowResult(row=index, serial=serial, result="created",
                                           id=inserted[serial]))
        else:
            results.append(ImportRowResult(row=index, serial=serial, result="skipped",
                                           reason="already imported"))
    results.sort(key=lambda item: item.row)
    counts = {kind: sum(1 for r in results if r.result == kind)
              for kind in ("created", "skipped", "invalid")}
    audit.record(session, "appliance.import", actor_id=admin.id, actor_type="admin",
                 target_type="appliance", ip=ip, rows=len(rows), **counts)
    return ImportResult(rows=results, **counts)


def _serial_of(row: Any) -> str | None:
    serial = row.get("serial") if isinstance(row, dict) else None
    return serial[:64] if isinstance(serial, str) and not _CONTROL.search(serial) else None


def _values(row: CheckedRow, now: Any) -> dict[str, Any]:
    return {
        "id": uuid7(), "serial": row.serial, "model": row.model, "hw_revision": row.hw_revision,
        "lifecycle": IMPORTED, "factory_secret_hash": secret_digest(row.factory_secret),
        "channel": "stable", "tags": [], "online": False, "settings": {}, "config_version": 0,
        "created_at": now, "updated_at": now,
    }
