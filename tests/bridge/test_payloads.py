"""Validation of every up/ message kind (bridge/payloads.py): what is accepted, what rejects a
message (and with which reason), which samples are refused on their own."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from epicura.bridge import payloads
from epicura.bridge.payloads import Rejected, parse, parse_topic
from tests.bridge import ingest_support as s

DEVICE = uuid.uuid4()


def _parse(kind: str, body: dict[str, Any] | bytes) -> payloads.DeviceMessage:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse(DEVICE, kind, raw, s.now_ms())


def _reason(kind: str, body: dict[str, Any] | bytes) -> str:
    with pytest.raises(Rejected) as caught:
        _parse(kind, body)
    return caught.value.reason


@pytest.mark.parametrize(("kind", "body"), [
    ("presence", s.presence_online()),
    ("presence", s.presence_offline("shutdown")),
    ("state", s.state(session_id=None)),
    ("telemetry", s.telemetry()),
    ("telemetry/backlog", s.telemetry(300)),
    ("session", s.session_event(uuid.uuid4())),
    ("alert", s.alert()),
    ("cmd/result", s.envelope(request_id=str(uuid.uuid4()), status="done")),
    ("ota", s.envelope(rollout_id=str(uuid.uuid4()), status="downloading", progress_pct=40)),
    ("sync", s.envelope(cursor="c1", installed=[
        {"recipe_id": str(uuid.uuid4()), "version": 3, "sha256": "a" * 64}])),
])
def test_valid_message_of_each_kind(kind: str, body: dict[str, Any]) -> None:
    message = _parse(kind, body)
    assert (message.kind, message.device_id, str(message.id)) == (kind, DEVICE, body["id"])
    if kind.startswith("telemetry"):
        assert len(message.samples) == len(body["samples"]) and message.refused == 0


def test_topic_names_device_and_kind() -> None:
    assert parse_topic(f"epicura/v1/{DEVICE}/up/cmd/result") == (DEVICE, "cmd/result")
    for bad in ("epicura/v1/nope/up/state", f"epicura/v1/{DEVICE}/up/other",
                f"epicura/v2/{DEVICE}/up/state", f"epicura/v1/{DEVICE}/down/cmd"):
        with pytest.raises(Rejected):
            parse_topic(bad)


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "invalid_json"),
    (b"\xff\xfe{}", "invalid_json"),
    (b'{"v":1,"x":NaN}', "invalid_json"),
    (b'{"v":1,"x":1e999}', "invalid_json"),
    (b"[" * 5000 + b"]" * 5000, "invalid_json"),
    (b"[1, 2]", "bad_envelope"),
    (b'{"v":1,"id":"x\\u0000"}', "nul_character"),
    (b" " * (payloads.MAX_PAYLOAD_BYTES + 1), "too_large"),
])
def test_malformed_payloads(raw: bytes, reason: str) -> None:
    assert _reason("telemetry", raw) == reason


def test_envelope_rules() -> None:
    body = s.telemetry()
    assert _reason("telemetry", {**body, "v": 2}) == "bad_version"
    assert _reason("telemetry", {**body, "v": True}) == "bad_version"
    assert _reason("telemetry", {**body, "v": 1.0}) == "bad_version"
    assert _reason("telemetry", {**body, "id": "not-a-uuid"}) == "bad_envelope"
    assert _reason("telemetry", {**body, "id": uuid.uuid4().hex}) == "bad_envelope"
    assert _reason("telemetry", {**body, "ts": "123"}) == "bad_envelope"
    assert _reason("telemetry", {**body, "ts": -5}) == "bad_envelope"


def test_wrong_types_and_missing_fields() -> None:
    assert _reason("telemetry", {**s.telemetry(), "seq": "1"}) == "bad_field"
    assert _reason("alert", {**s.alert(), "severity": "meh"}) == "bad_field"
    assert _reason("state", {**s.state(), "channel": 3}) == "bad_field"
    body = s.alert()
    del body["code"]
    assert _reason("alert", body) == "missing_field"
    assert _reason("presence", s.envelope(state="online")) == "missing_field"
    assert _reason("cmd/result", s.envelope(request_id="r", status="done")) == "bad_field"
    assert _reason("sync", s.envelope(cursor="c", installed=[{"recipe_id": "x"}])) == "bad_field"


def test_a_payload_naming_another_device_is_rejected() -> None:
    other = str(uuid.uuid4())
    assert _reason("state", {**s.state(), "device_id": other}) == "wrong_device"
    body = s.telemetry()
    body["samples"][0]["device_id"] = other
    assert _reason("telemetry", body) == "wrong_device"
    assert _parse("state", {**s.state(), "device_id": str(DEVICE)}).kind == "state"


def test_sample_count_bounds() -> None:
    assert _reason("telemetry", {**s.telemetry(), "samples": []}) == "bad_samples"
    assert _reason("telemetry", s.telemetry(301)) == "bad_samples"
    assert _reason("telemetry", {**s.telemetry(), "samples": [1, 2]}) == "bad_samples"


def test_samples_out_of_window_or_range_are_refused_alone() -> None:
    now = s.now_ms()
    body = s.telemetry(1)
    body["samples"] = [
        s.sample(now),
        s.sample(now + 10 * 60_000),                 # 10 minutes ahead
        s.sample(now - 15 * 86400_000),              # older than raw retention
        s.sample(now, bowl_temp_c=999.0),            # not a plausible temperature
        s.sample(now, lid="ajar"),
        s.sample(now, speed=None, heater_w=None),    # a missing sensor is not an error
    ]
    message = _parse("telemetry", body)
    assert (len(message.samples), message.refused) == (2, 4)


def test_wrong_sample_types_reject_the_message() -> None:
    for field, value in (("t", "now"), ("t", 1.5), ("bowl_temp_c", "hot"), ("speed", True),
                         ("lid", 1)):
        body = s.telemetry(1)
        body["samples"][0][field] = value
        assert _reason("telemetry", body) == "bad_samples", field


def test_unknown_sample_fields_are_kept_as_extra() -> None:
    body = s.telemetry(1)
    body["samples"][0]["steam_valve"] = "open"
    message = _parse("telemetry", body)
    assert payloads.sample_extra(message.samples[0]) == {"steam_valve": "open"}
    assert payloads.sample_extra(s.sample()) is None
