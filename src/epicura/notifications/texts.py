"""What a notification says, in the user's language (English and German; English otherwise).

Texts carry ids and short facts only (a step's prompt, an alert's kind), never tokens or secrets.
"""

from __future__ import annotations

from typing import Any

LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"
MAX_PROMPT = 160

ALERT_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "overtemp": "Overheating", "lid_open_while_running": "Lid open while running",
        "motor_stall": "Motor stalled", "overweight": "Too much in the bowl",
        "sensor_fault": "Sensor fault",
    },
    "de": {
        "overtemp": "Überhitzung", "lid_open_while_running": "Deckel offen während des Betriebs",
        "motor_stall": "Motor blockiert", "overweight": "Zu viel im Topf",
        "sensor_fault": "Sensorfehler",
    },
}

# kind -> language -> (title, body); `{…}` are the notification's params.
TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "awaiting_user": {
        "en": ("Your Epicura needs you", "Step {step}: {prompt}"),
        "de": ("Dein Epicura braucht dich", "Schritt {step}: {prompt}"),
    },
    "session_completed": {
        "en": ("Your dish is ready", "Cooking is finished. Enjoy your meal!"),
        "de": ("Dein Gericht ist fertig", "Der Kochvorgang ist beendet. Guten Appetit!"),
    },
    "session_aborted": {
        "en": ("Cooking stopped", "The cooking session was aborted."),
        "de": ("Kochen abgebrochen", "Der Kochvorgang wurde abgebrochen."),
    },
    "session_failed": {
        "en": ("Cooking failed", "The appliance could not finish the cooking session."),
        "de": ("Kochen fehlgeschlagen", "Das Gerät konnte den Kochvorgang nicht beenden."),
    },
    "alert": {
        "en": ("Alert: {alert_name}", "Your Epicura reports: {alert_name}. Please check it."),
        "de": ("Warnung: {alert_name}", "Dein Epicura meldet: {alert_name}. Bitte sieh nach."),
    },
    "appliance_offline": {
        "en": ("Appliance offline", "Your Epicura went offline during a cooking session."),
        "de": ("Gerät offline", "Dein Epicura ist während eines Kochvorgangs offline gegangen."),
    },
    "firmware_available": {
        "en": ("Update available", "Firmware {version} is available for your Epicura."),
        "de": ("Update verfügbar", "Firmware {version} ist für dein Epicura verfügbar."),
    },
    "firmware_installed": {
        "en": ("Update installed", "Your Epicura now runs firmware {version}."),
        "de": ("Update installiert", "Dein Epicura läuft jetzt mit Firmware {version}."),
    },
    "firmware_failed": {
        "en": ("Update failed", "Firmware {version} could not be installed on your Epicura."),
        "de": ("Update fehlgeschlagen",
               "Firmware {version} konnte auf deinem Epicura nicht installiert werden."),
    },
    "security_token_reuse": {
        "en": ("Security: a device was signed out",
               "An old sign-in of one of your devices was used again; we ended it."),
        "de": ("Sicherheit: ein Gerät wurde abgemeldet",
               "Eine alte Anmeldung eines deiner Geräte wurde erneut benutzt; "
               "wir haben sie beendet."),
    },
    "security_password_changed": {
        "en": ("Security: password changed",
               "Your password was changed and every device was signed out."),
        "de": ("Sicherheit: Passwort geändert",
               "Dein Passwort wurde geändert und alle Geräte wurden abgemeldet."),
    },
}


def language_of(locale: str | None) -> str:
    """`de`, `de-AT`, `de_CH` → `de`; anything not translated → English."""
    if not locale:
        return DEFAULT_LANGUAGE
    language = locale.replace("_", "-").split("-", 1)[0].lower()
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(kind: str, params: dict[str, Any], locale: str | None) -> tuple[str, str]:
    """(title, body) of a notification of `kind` in the language of `locale`."""
    language = language_of(locale)
    title, body = TEMPLATES[kind][language]
    values = _Blank(params)
    if kind == "awaiting_user":
        index = params.get("step_index")
        values["step"] = index + 1 if isinstance(index, int) else "?"
        prompt = str(params.get("prompt") or "").strip()
        if not prompt:
            body = "Schritt {step} wartet auf dich." if language == "de" else \
                "Step {step} is waiting for you."
        values["prompt"] = prompt[:MAX_PROMPT]
    if kind == "alert":
        code = str(params.get("code") or "")
        values["alert_name"] = ALERT_NAMES[language].get(code, code.replace("_", " "))
    return title.format_map(values)[:200], body.format_map(values)[:500]
