"""`up/session` payloads the bridge refuses before anything is stored."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from epicura.bridge.payloads import SESSION_DATA_MAX_BYTES, Rejected, validate
from tests.sessions.support import event, now_ms

DEVICE = uuid.uuid4()
SID = uuid.uuid4()


def fails(body: dict[str, Any]) -> str:
    with pytest.raises(Rejected) as caught:
        validate(DEVICE, "session", body, now_ms())
    return caught.value.reason


@pytest.mark.parametrize("fields", [
    {"seq": -1}, {"seq": 1.0}, {"seq": True}, {"seq": "1"}, {"seq": 2**53 + 1},
    {"type": "exploded"}, {"type": "STARTED"}, {"type": None},
    {"session_id": "not-a-uuid"}, {"session_id": str(SID).replace("-", "")},
    {"session_id": 42}, {"step_index": -1}, {"step_index": 10_001}, {"recipe_version": 0},
    {"recipe_id": "x"}, {"servings": 0}, {"data": []}, {"data": "text"},
    {"data": {"blob": "x" * SESSION_DATA_MAX_BYTES}}, {"data": {"n": 2**70}},
])
def test_bad_session_events_are_refused(fields: dict[str, Any]) -> None:
    assert fails({**event(SID, 1, "started"), **fields}) == "bad_field"


def test_missing_fields_and_another_device_are_refused() -> None:
    for name in ("session_id", "seq", "type"):
        body = event(SID, 1, "started")
        del body[name]
        assert fails(body) == "missing_field"
    assert fails({**event(SID, 1, "started"), "device_id": str(uuid.uuid4())}) == "wrong_device"


def test_a_good_event_passes() -> None:
    body = event(SID, 7, "awaiting_user", step_index=2, data={"prompt": "Add the onions"})
    message = validate(DEVICE, "session", body, now_ms())
    assert message.body["seq"] == 7 and message.session_id == SID
