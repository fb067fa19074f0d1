"""What the portal's list and action pages share: filters kept across pages, cursors, and the
redirect back after a form with a short notice."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi.responses import RedirectResponse

from epicura.portal.web import PREFIX

PAGE_SIZE = 25
PLAIN_TEXT = r"^[^\x00-\x1f\x7f]*$"  # search text: no control characters
NOTICES = {
    "role": "The role was changed; the user's sessions were ended.",
    "enabled": "The account was enabled.",
    "disabled": "The account was disabled; its sessions were ended.",
    "revoked": "The user's sessions were ended.",
    "decommissioned": "The appliance was decommissioned.",
    "saved": "Saved as a new version.",
    "published": "Published.",
    "restored": "Restored as a new version.",
    "retried": "The job was queued again.",
    "uploaded": "The release was uploaded and checked: it is ready.",
    "yanked": "The release was yanked; its open rollouts were aborted.",
    "rollout_created": "The rollout was created as a draft.",
    "start": "The rollout started: its first stage is open.",
    "pause": "The rollout is paused.",
    "resume": "The rollout resumed.",
    "advance": "The rollout moved on.",
    "abort": "The rollout was aborted.",
}


def kept(**filters: Any) -> dict[str, str]:
    """The filters that are set, as query parameters for the next page's link."""
    return {k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in filters.items() if v not in (None, "")}


def back(path: str, notice: str) -> RedirectResponse:
    """After a form: back to the page (POST-redirect-GET), with a notice from a fixed list."""
    return RedirectResponse(f"{PREFIX}{path}?{urlencode({'done': notice})}", status_code=303)


def notice(done: str | None) -> str | None:
    return NOTICES.get(done or "")
