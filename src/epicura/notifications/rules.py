"""The rules of domain.md's Notifications, as pure functions: categories, what is urgent (safety
alerts and security events ignore quiet hours and opt-outs), priority, how long a push is worth
delivering, and quiet hours in the user's time zone."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import datetime, time, timedelta

COOKING, ALERTS, APPLIANCE, FIRMWARE, SECURITY = (
    "cooking", "alerts", "appliance", "firmware", "security")
CATEGORIES = (COOKING, ALERTS, APPLIANCE, FIRMWARE, SECURITY)
OPTIONAL_CATEGORIES = (COOKING, ALERTS, APPLIANCE, FIRMWARE)  # security cannot be turned off

KIND_CATEGORY = {
    "awaiting_user": COOKING,
    "session_completed": COOKING,
    "session_aborted": COOKING,
    "session_failed": COOKING,
    "alert": ALERTS,
    "appliance_offline": APPLIANCE,
    "firmware_available": FIRMWARE,
    "firmware_installed": FIRMWARE,
    "firmware_failed": FIRMWARE,
    "security_token_reuse": SECURITY,
    "security_password_changed": SECURITY,
}

# Alerts about the cook's safety: a critical severity, or one of these whatever the severity.
SAFETY_CODES = frozenset({"overtemp", "lid_open_while_running", "motor_stall"})

# How long a push is still worth showing (provider expiry; a push held by quiet hours past it is
# dropped, the inbox entry stays).
TTL_S = {
    "awaiting_user": 15 * 60,
    "alert": 60 * 60,
    "appliance_offline": 60 * 60,
    COOKING: 6 * 3600,
    FIRMWARE: 3 * 86400,
    SECURITY: 86400,
}

# Push states of an inbox entry.
PUSH_QUEUED, PUSH_HELD, PUSH_OFF, PUSH_NONE = "queued", "held", "off", "none"

# Preference values allowed for quiet hours.
QUIET_TIME_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"


def is_safety_alert(code: str | None, severity: str | None) -> bool:
    return severity == "critical" or code in SAFETY_CODES


def is_urgent(kind: str, params: dict[str, object]) -> bool:
    """Ignores quiet hours and opt-outs."""
    if KIND_CATEGORY[kind] == SECURITY:
        return True
    if kind == "alert":
        code, severity = params.get("code"), params.get("severity")
        return is_safety_alert(str(code) if code else None, str(severity) if severity else None)
    return False


def high_priority(kind: str) -> bool:
    """Shown at once (FCM `HIGH`, APNs 10); firmware news can wait for the device (5)."""
    return KIND_CATEGORY[kind] != FIRMWARE


def ttl_s(kind: str) -> int:
    return TTL_S.get(kind) or TTL_S[KIND_CATEGORY[kind]]


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time
    timezone: str

    @classmethod
    def parse(cls, start: str | None, end: str | None, timezone: str) -> QuietHours | None:
        if not start or not end or start == end:
            return None
        return cls(time.fromisoformat(start), time.fromisoformat(end), timezone)

    def ends_after(self, now: datetime) -> datetime | None:
        """When the quiet period holding `now` ends (UTC), or None when `now` is not quiet."""
        try:
            zone = zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = zoneinfo.ZoneInfo("UTC")
        local = now.astimezone(zone)
        t = local.time().replace(tzinfo=None)
        if self.start < self.end:
            quiet = self.start <= t < self.end
        else:  # over midnight, e.g. 22:00–07:00
            quiet = t >= self.start or t < self.end
        if not quiet:
            return None
        end_day = local.date() if t < self.end else local.date() + timedelta(days=1)
        end_local = datetime.combine(end_day, self.end, tzinfo=zone)
        return end_local.astimezone(now.tzinfo)
