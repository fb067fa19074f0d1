"""Device sync tables: each appliance's local library and its change counter, and the last
`up/sync` report of what the appliance has installed.

These rows are derived data kept by `library.py`. They carry no foreign keys on purpose: writing
them must not take key-share locks on `appliances` or `recipes` rows, which pairing and
archiving hold `FOR UPDATE` while they call into the library (a lock-order deadlock otherwise).
Recipes and appliances are never deleted (archived, decommissioned).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from epicura.kit.db import Base, JSONType

# Why a recipe is in an appliance's library (any of them keeps it there).
FAVORITE, SENT, PINNED = "favorite", "sent", "pinned"
REASONS = (FAVORITE, SENT, PINNED)


class ApplianceSync(Base):
    """One row per appliance that has (or had) a library.

    `last_seq` numbers the changes of its library. Taking the next number locks this row until
    the transaction ends, so the changes of one library commit in the order of their numbers:
    a reader who has seen change n has seen every change before it (a global sequence would not
    promise that). `owner_id` is the owner the library was built for; when the appliance's owner
    differs (paired, unpaired, re-paired) the library is rebuilt.
    """

    __tablename__ = "appliance_sync"

    appliance_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    owner_id: Mapped[uuid.UUID | None]
    report_cursor: Mapped[str | None] = mapped_column(String(200))
    report_installed: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    reported_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class LibraryEntry(Base):
    """A recipe that is, or was, in an appliance's library. A row is never deleted: once it has
    no reason left (or its recipe is archived or no longer readable by the owner) it is the
    recipe's tombstone. `seq` is the number of the last change that touched it."""

    __tablename__ = "appliance_library"
    __table_args__ = (
        Index("ix_appliance_library_appliance_seq", "appliance_id", "seq", "recipe_id"),
        Index("ix_appliance_library_recipe_id", "recipe_id"),
    )

    appliance_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    recipe_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    favorite: Mapped[bool] = mapped_column(default=False)
    sent: Mapped[bool] = mapped_column(default=False)
    pinned: Mapped[bool] = mapped_column(default=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
