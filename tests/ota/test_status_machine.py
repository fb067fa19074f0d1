"""The device-outcome state machine (checklist T41) under random report sequences: duplicates
change nothing, an attempt only moves forward, `succeeded` and `rolled_back` are final, failures
are counted once each and each one pushes the next offer back."""

from __future__ import annotations

import uuid
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from epicura.kit import clock
from epicura.ota import updates
from epicura.ota.models import OUTCOMES, PENDING, RolloutDevice
from epicura.ota.schemas import FirmwareStatus

ROLLOUT = uuid.uuid4()


def fresh() -> RolloutDevice:
    now = clock.utcnow()
    return RolloutDevice(rollout_id=ROLLOUT, appliance_id=uuid.uuid4(), bucket=0, stage=0,
                         status=PENDING, failures=0, notified=False, created_at=now,
                         updated_at=now)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(OUTCOMES), max_size=30))
def test_reports_follow_the_state_machine(reports: list[str]) -> None:
    row, now = fresh(), clock.utcnow()
    failures = 0
    for step, status in enumerate(reports):
        before = (row.status, row.failures, row.next_offer_at)
        taken = updates._allowed(row.status, status)
        if before[0] in updates.FINAL:
            assert taken == (status == before[0])  # final: only its own repeat is taken
        if before[0] in updates.ATTEMPT_ORDER and status in updates.ATTEMPT_ORDER \
                and status != before[0]:
            # Within an attempt: forward only.
            assert taken == (updates.ATTEMPT_ORDER[status] > updates.ATTEMPT_ORDER[before[0]])
        if not taken:
            continue
        moment = now + timedelta(minutes=step)
        updates._apply(row, FirmwareStatus(rollout_id=ROLLOUT, status=status), moment)
        assert row.status == status
        if status == "failed" and before[0] != "failed":
            failures += 1
            assert row.next_offer_at is not None and row.next_offer_at > moment
        if status == before[0]:
            assert row.failures == before[1]  # a repeat counts nothing again
        assert row.failures == failures
