"""What a finished session leaves behind: its telemetry summary (from known samples), the
recipe's cooked count, and ratings averaged over one rating per session."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from epicura.kit import clock
from tests.sessions.support import Cook, cook, event, send, telemetry
from tests.support import API, Service

pytestmark = pytest.mark.anyio


async def test_the_summary_is_computed_from_the_sessions_samples(api: Service) -> None:
    c = await cook(api)
    with clock.frozen(clock.utcnow().replace(microsecond=0)):
        t0 = int(clock.utcnow().timestamp() * 1000)
        sid = (await c.new_session())["id"]
        await send(api, c.appliance_id, event(sid, 1, "started"))
        # Ten tagged samples at 1 Hz, 20 → 110 °C, heater at 3.6 kW: 10 Wh.
        tagged = [{"t": t0 + 1000 * i, "bowl_temp_c": 20.0 + 10 * (i - 1), "heater_w": 3600.0}
                  for i in range(1, 11)]
        untagged = [{"t": t0 + 11_000, "bowl_temp_c": 20.0, "heater_w": 0.0}]
        elsewhere = [{"t": t0 + 5_500, "bowl_temp_c": 300.0, "heater_w": 9000.0}]
        before = [{"t": t0 - 60_000, "bowl_temp_c": 250.0, "heater_w": 9000.0}]
        clock.advance(timedelta(seconds=12))
        await send(api, c.appliance_id, telemetry(sid, tagged), telemetry(None, untagged),
                   telemetry(uuid.uuid4(), elsewhere), telemetry(None, before),
                   kind="telemetry")
        await send(api, c.appliance_id, event(sid, 2, "completed",
                                              data={"peak_temp_c": 999, "energy_wh": 1}))
    done = await c.get(sid)
    assert done["summary"] == {"duration_s": 12, "samples": 11, "peak_temp_c": 110.0,
                               "mean_temp_c": 60.9, "energy_wh": 10.0, "source": "telemetry"}
    series = await api.client.get(f"{API}/sessions/{sid}/telemetry?resolution=raw",
                                  headers=c.headers)
    assert series.status_code == 200, series.text
    body = series.json()
    assert body["session_id"] == sid and body["resolution"] == "raw"
    assert body["from"] == t0 and body["to"] == t0 + 12_000
    assert [point[0] for point in body["metrics"]["bowl_temp_c"]] == sorted(
        s["t"] for s in tagged + untagged + elsewhere)


async def test_without_telemetry_the_appliances_own_figures_are_shown(api: Service) -> None:
    c = await cook(api)
    sid = (await c.new_session())["id"]
    await send(api, c.appliance_id, event(sid, 1, "started"), event(
        sid, 2, "failed", data={"reason": "motor", "peak_temp_c": 88.04, "energy_wh": 12,
                                "mean_temp_c": "hot"}))
    summary = (await c.get(sid))["summary"]
    assert summary["source"] == "appliance" and summary["samples"] == 0
    assert (summary["peak_temp_c"], summary["energy_wh"], summary["mean_temp_c"]) == (
        88.0, 12.0, None)


async def _finished(api: Service, c: Cook, status: str = "completed") -> str:
    sid: str = (await c.new_session())["id"]
    await send(api, c.appliance_id, event(sid, 1, "started"), event(sid, 2, status))
    return sid


async def _recipe(api: Service, c: Cook) -> dict[str, Any]:
    reply = await api.client.get(f"{API}/recipes/{c.recipe_id}", headers=c.headers)
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


async def _rate(api: Service, c: Cook, sid: str, rating: int | None) -> None:
    reply = await api.client.patch(f"{API}/sessions/{sid}", json={"rating": rating},
                                   headers=c.headers)
    assert reply.status_code == 200, reply.text


async def test_cooked_count_and_ratings_reach_the_recipe(api: Service) -> None:
    c = await cook(api)
    first = await _recipe(api, c)  # now in the recipe caches
    assert (first["cooked_count"], first["rating_avg"], first["rating_count"]) == (0, None, 0)
    one = await _finished(api, c)
    two = await _finished(api, c)
    aborted = await _finished(api, c, "aborted")
    assert (await _recipe(api, c))["cooked_count"] == 2  # aborted does not count
    await _rate(api, c, one, 4)
    await _rate(api, c, two, 2)
    assert ((r := await _recipe(api, c))["rating_avg"], r["rating_count"]) == (3.0, 2)
    await _rate(api, c, one, 5)  # replaces the 4
    await _rate(api, c, one, 5)  # the same again changes nothing
    assert ((r := await _recipe(api, c))["rating_avg"], r["rating_count"]) == (3.5, 2)
    await _rate(api, c, aborted, 1)
    await _rate(api, c, two, None)  # withdrawn
    assert ((r := await _recipe(api, c))["rating_avg"], r["rating_count"]) == (3.0, 2)
    await _rate(api, c, one, None)
    await _rate(api, c, aborted, None)
    assert ((r := await _recipe(api, c))["rating_avg"], r["rating_count"]) == (None, 0)
