"""The session state machine: what one appliance event does to the mirrored session.

The appliance is the source of truth and numbers its events (`seq`). Events are applied in the
order of their numbers only: one numbered at or below the newest applied is logged and never
moves the state (a late `started` still fills in a missing start time). Each applied event puts
the session in the state it implies — `planned` → `running` ⇄ `paused`, `running` →
`awaiting_user` → `running`, and the terminal `completed`, `aborted`, `failed` — so a gap left
by an event still on its way does not hold the mirror back. A terminal session never changes.

The current step's timer counts only while the session runs (not while paused or waiting for
the cook); remaining times are computed from it at read time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from epicura.sessions.models import (
    ABORTED,
    AWAITING_USER,
    COMPLETED,
    FAILED,
    PAUSED,
    PLANNED,
    RUNNING,
    TERMINAL,
    CookingSession,
)
from epicura.sessions.program import TITLE_MAX, Program

IMPLIED = {
    "started": RUNNING, "step_started": RUNNING, "step_completed": RUNNING,
    "user_acknowledged": RUNNING, "awaiting_user": AWAITING_USER, "paused": PAUSED,
    "completed": COMPLETED, "aborted": ABORTED, "failed": FAILED,
}  # `resumed` returns to what the pause interrupted


@dataclass(frozen=True)
class Event:
    type: str
    seq: int
    step_index: int | None
    data: dict[str, Any] | None
    device_time: datetime  # the appliance's clock, never later than the server's


@dataclass
class Change:
    """What applying an event did (what to announce)."""

    applied: bool = False
    updated: bool = False  # status or step changed
    awaiting: bool = False  # the cook is now awaited
    finished: bool = False  # the session just ended
    prompt: str | None = None


def apply(row: CookingSession, event: Event, program: Program | None, now: datetime) -> Change:
    change = Change()
    if event.type == "started" and row.started_at is None:
        row.started_at = event.device_time
    if row.status in TERMINAL or event.seq <= row.last_seq:
        return change  # logged only
    change.applied = True
    before = (row.status, row.step_index)
    row.last_seq = event.seq
    _stop_timer(row, now)
    status = _next_status(row, event)
    if event.type == "paused":
        row.resume_status = row.status if row.status in (RUNNING, AWAITING_USER) else RUNNING
    if event.type == "step_started" or (
            event.step_index is not None and event.step_index != row.step_index
            and status not in TERMINAL):
        _enter_step(row, event, program)
    if event.type == "step_completed" and row.step_duration_s is not None:
        row.step_elapsed_s = float(row.step_duration_s)
    row.status = status
    if status == RUNNING and event.type != "step_completed" and row.step_index is not None:
        row.step_started_at = now
    if status in TERMINAL:
        _finish(row, event)
        change.finished = True
    if event.type == "awaiting_user":
        change.awaiting = True
        change.prompt = _prompt(event, program, row.step_index)
    change.updated = (row.status, row.step_index) != before or event.type == "step_started"
    return change


def _next_status(row: CookingSession, event: Event) -> str:
    if event.type == "resumed":
        status = row.resume_status or RUNNING
        row.resume_status = None
        return status
    if event.type != "paused":
        row.resume_status = None
    return IMPLIED[event.type]


def _stop_timer(row: CookingSession, now: datetime) -> None:
    if row.step_started_at is not None:
        row.step_elapsed_s += max(0.0, (now - row.step_started_at).total_seconds())
        row.step_started_at = None


def _enter_step(row: CookingSession, event: Event, program: Program | None) -> None:
    index = event.step_index
    step = program.step(index) if program is not None else None
    row.step_index = index
    title = step.title if step is not None else (event.data or {}).get("title")
    row.step_title = str(title)[:TITLE_MAX] if title else None
    row.step_duration_s = step.duration_s if step is not None else None
    row.step_elapsed_s = 0.0


def _finish(row: CookingSession, event: Event) -> None:
    row.resume_status = None
    row.step_started_at = None
    row.ended_at = max(event.device_time, row.started_at or event.device_time)
    started = row.started_at or row.created_at
    row.duration_s = max(0, round((row.ended_at - started).total_seconds()))


def _prompt(event: Event, program: Program | None, index: int | None) -> str | None:
    given = (event.data or {}).get("prompt")
    if isinstance(given, str) and given:
        return given[:TITLE_MAX]
    step = program.step(index) if program is not None else None
    if step is None:
        return None
    return step.prompt or step.title


# --- reading ---------------------------------------------------------------------------------

def step_remaining_s(row: CookingSession, now: datetime) -> int | None:
    if row.status in TERMINAL:
        return 0
    if row.step_duration_s is None or row.step_index is None:
        return None
    elapsed = row.step_elapsed_s
    if row.step_started_at is not None:
        elapsed += max(0.0, (now - row.step_started_at).total_seconds())
    return max(0, round(row.step_duration_s - elapsed))


def remaining_s(row: CookingSession, program: Program | None, now: datetime) -> int | None:
    if row.status in TERMINAL:
        return 0
    if program is None:
        return None
    if row.status == PLANNED or row.step_index is None:
        return program.total_s
    step = step_remaining_s(row, now)
    return (step or 0) + program.seconds_after(row.step_index)
