"""Every module's tables, imported so that `Base.metadata` knows them all (for Alembic)."""

from __future__ import annotations

from epicura.appliances import models as appliance_models
from epicura.appliances import sync_models
from epicura.auth import models as auth_models
from epicura.kit import audit, jobs, schedule, signing
from epicura.kit.db import Base
from epicura.notifications import models as notification_models
from epicura.ota import models as ota_models
from epicura.realtime import outbox
from epicura.recipes import models as recipe_models
from epicura.sessions import models as session_models
from epicura.telemetry import models as telemetry_models

metadata = Base.metadata
__all__ = [
    "appliance_models", "audit", "auth_models", "jobs", "metadata", "notification_models",
    "ota_models", "outbox", "recipe_models", "schedule", "session_models", "signing", "sync_models",
    "telemetry_models",
]
