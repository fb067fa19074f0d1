"""`command` frames follow the rules of `POST /appliances/{id}/commands`: the same checks, the
same error codes (in an `error` frame, `ref` echoed), and on success `command.sent` with the
request id, as the REST reply's body."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from epicura.appliances import reported
from epicura.kit import clock
from tests.realtime.ws_support import Served, authed
from tests.support import API, bearer

pytestmark = pytest.mark.anyio


async def _online(served: Served, appliance_id: uuid.UUID) -> None:
    """What the bridge does on a birth message."""
    async with served.runtime.db.transaction() as session:
        await reported.apply_presence(session, appliance_id, {
            "state": "online", "firmware_version": "1.4.2", "boot_id": "boot-1"},
            clock.utcnow())


async def test_a_command_is_sent_and_recorded(served: Served) -> None:
    user_id, tokens = await served.user("cmd")
    appliance_id = await served.appliance(user_id)
    await _online(served, appliance_id)
    async with authed(served, tokens) as client:
        sent = await client.request("command", {"appliance_id": str(appliance_id),
                                                "name": "identify", "args": {"duration_s": 5}})
    assert sent["type"] == "command.sent", sent
    assert sent["data"]["status"] == "sent"
    request_id = sent["data"]["request_id"]
    recorded = await served.svc.client.get(
        f"{API}/appliances/{appliance_id}/commands/{request_id}", headers=bearer(tokens))
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["name"] == "identify"
    assert recorded.json()["args"] == {"duration_s": 5}


async def test_command_errors_carry_the_rest_codes(served: Served) -> None:
    user_id, tokens = await served.user("cmderr")
    owner_id, _ = await served.user("cmdowner")
    offline = await served.appliance(user_id)
    online = await served.appliance(user_id)
    await _online(served, online)
    theirs = await served.appliance(owner_id)
    await _online(served, theirs)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"appliance_id": str(offline), "name": "identify"}, "appliance_offline"),
        ({"appliance_id": str(online), "name": "heat", "args": {"temperature_c": 120}},
         "command_not_allowed"),
        ({"appliance_id": str(online), "name": "identify", "args": {"duration_s": 9999}},
         "validation_failed"),
        ({"appliance_id": str(theirs), "name": "identify"}, "not_found"),
        ({"appliance_id": str(uuid.uuid4()), "name": "identify"}, "not_found"),
        ({"appliance_id": "nope", "name": "identify"}, "validation_failed"),
        ({"name": "identify", "owner_id": str(user_id)}, "validation_failed"),
    ]
    async with authed(served, tokens) as client:
        for data, code in cases:
            answer = await client.request("command", data)
            assert answer["type"] == "error", data
            assert answer["data"]["code"] == code, (data, answer)
            assert answer["ref"].startswith("r")
