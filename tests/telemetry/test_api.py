"""`GET /telemetry/{id}` and `…/latest`: who may read (owner, admin; others 404), resolution by
span and when it is too fine, the 10,000-point cap (merged buckets, thinned raw), default
window, and input validation (422, never 500)."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from epicura.telemetry import service as telemetry_service
from epicura.telemetry.aggregate import from_sample, merge
from epicura.telemetry.models import METRICS, telemetry_1m
from tests.support import API, Service
from tests.telemetry.conftest import (
    T0,
    admin,
    appliance,
    ms,
    person,
    sample,
    store,
    store_latest,
)

pytestmark = pytest.mark.anyio
PROBLEM = "application/problem+json"


def url(appliance_id: uuid.UUID, tail: str = "") -> str:
    return f"{API}/telemetry/{appliance_id}{tail}"


def assert_problem(reply: Any, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == PROBLEM
    body: dict[str, Any] = reply.json()
    assert body["code"] == code
    return body


@pytest.mark.parametrize(("span", "asked", "expected"), [
    (timedelta(minutes=30), None, ("raw", 0)),
    (timedelta(hours=1), None, ("raw", 0)),
    (timedelta(hours=2), None, ("1m", 60)),
    (timedelta(days=6), None, ("1m", 60)),
    (timedelta(days=7), None, ("1m", 120)),  # 10,080 minutes: pairs of minutes per point
    (timedelta(days=8), None, ("1h", 3600)),
    (timedelta(days=731), None, ("1h", 7200)),
    (timedelta(hours=2), "raw", ("raw", 0)),
    (timedelta(hours=5), "raw", ("1m", 60)),  # raw would pass 10,000 samples at 1 Hz
    (timedelta(days=30), "1m", ("1h", 3600)),
    (timedelta(minutes=10), "1h", ("1h", 3600)),
])
def test_resolution_by_span_and_cap(span: timedelta, asked: str | None,
                                    expected: tuple[str, int]) -> None:
    resolution, bucket_s = telemetry_service.choose_resolution(span, asked)
    assert (resolution, bucket_s) == expected
    if bucket_s:  # however the range falls on the bucket grid, it holds at most 10,000 points
        assert span.total_seconds() // bucket_s + 1 <= telemetry_service.MAX_POINTS


async def test_owner_and_admin_read_others_get_404(at_t0: Service) -> None:
    svc = at_t0
    cook = await person(svc, "telemetry-owner@example.com")
    stranger = await person(svc, "telemetry-stranger@example.com")
    boss = await admin(svc, "telemetry-admin@example.com")
    mine = await appliance(svc, cook.id)
    unpaired = await appliance(svc, None)
    await store(svc.runtime.db, [sample(mine, T0 - timedelta(minutes=5), bowl_temp_c=60.5)])
    await store_latest(svc.runtime.db, mine, T0 - timedelta(minutes=5), {"bowl_temp_c": 60.5})

    for who in (cook, boss):
        reply = await svc.client.get(url(mine), headers=who.headers)
        assert reply.status_code == 200, reply.text
        assert reply.json()["metrics"]["bowl_temp_c"] == [[ms(T0 - timedelta(minutes=5)), 60.5]]
        latest = await svc.client.get(url(mine, "/latest"), headers=who.headers)
        assert latest.status_code == 200
        assert latest.json() == {"appliance_id": str(mine), "session_id": None,
                                 "t": ms(T0 - timedelta(minutes=5)),
                                 "sample": {"bowl_temp_c": 60.5}}
    # Another user's appliance, an unowned one and one that does not exist look the same.
    for target in (mine, unpaired, uuid.uuid4()):
        assert_problem(await svc.client.get(url(target), headers=stranger.headers), 404,
                       "not_found")
        assert_problem(await svc.client.get(url(target, "/latest"), headers=stranger.headers),
                       404, "not_found")
    assert (await svc.client.get(url(unpaired), headers=boss.headers)).status_code == 200
    assert_problem(await svc.client.get(url(unpaired, "/latest"), headers=boss.headers), 404,
                   "no_telemetry")
    assert_problem(await svc.client.get(url(mine)), 401, "unauthorized")


async def test_default_window_is_the_last_hour_and_metrics_filter(at_t0: Service) -> None:
    svc = at_t0
    cook = await person(svc, "telemetry-window@example.com")
    mine = await appliance(svc, cook.id)
    await store(svc.runtime.db, [
        sample(mine, T0 - timedelta(minutes=61), bowl_temp_c=1.0),  # before the window
        sample(mine, T0 - timedelta(minutes=59), bowl_temp_c=2.0, lid="open", speed=None),
        sample(mine, T0 - timedelta(seconds=1), bowl_temp_c=3.0, speed=4.0),
        sample(mine, T0, bowl_temp_c=4.0),  # `to` is exclusive
    ])
    reply = await svc.client.get(url(mine), headers=cook.headers)
    body = reply.json()
    assert (body["from"], body["to"]) == (ms(T0 - timedelta(hours=1)), ms(T0))
    assert (body["resolution"], body["bucket_s"], sorted(body["metrics"])) == (
        "raw", 0, sorted(METRICS))
    assert body["metrics"]["bowl_temp_c"] == [[ms(T0 - timedelta(minutes=59)), 2.0],
                                             [ms(T0 - timedelta(seconds=1)), 3.0]]
    assert body["metrics"]["speed"] == [[ms(T0 - timedelta(seconds=1)), 4.0]]
    assert body["metrics"]["lid"] == [[ms(T0 - timedelta(minutes=59)), "open"]]

    only = await svc.client.get(url(mine), headers=cook.headers,
                                params={"metrics": " speed,lid ,speed"})
    assert list(only.json()["metrics"]) == ["speed", "lid"]


async def test_raw_past_the_cap_is_thinned_over_the_whole_range(at_t0: Service) -> None:
    svc = at_t0
    cook = await person(svc, "telemetry-thin@example.com")
    mine = await appliance(svc, cook.id)
    start = T0 - timedelta(minutes=50)
    step = timedelta(milliseconds=250)  # 4 Hz: 12,000 samples in 50 minutes
    await store(svc.runtime.db, [sample(mine, start + n * step, weight_g=float(n))
                                 for n in range(12_000)])
    reply = await svc.client.get(url(mine), headers=cook.headers,
                                 params={"metrics": "weight_g", "resolution": "raw"})
    points = reply.json()["metrics"]["weight_g"]
    assert len(points) == 6_000  # every 2nd sample
    assert points[0] == [ms(start), 0.0]
    assert points[-1] == [ms(start + 11_998 * step), 11_998.0]
    assert all(b[0] - a[0] == 500 for a, b in itertools.pairwise(points))


async def test_a_seven_day_span_merges_minute_pairs(at_t0: Service) -> None:
    svc = at_t0
    cook = await person(svc, "telemetry-merge@example.com")
    mine = await appliance(svc, cook.id)
    even = T0 - timedelta(days=2, minutes=30)  # a multiple of 2 minutes since the epoch
    minutes = [
        (even, [20.0, 22.0]),
        (even + timedelta(minutes=1), [30.0, 32.0, 34.0]),
        (even + timedelta(minutes=2), [50.0]),
    ]
    rows = []
    for bucket, values in minutes:
        merged = merge([from_sample({**dict.fromkeys(METRICS), "bowl_temp_c": v})
                        for v in values])
        rows.append({"appliance_id": mine, "bucket": bucket, **merged})
    async with svc.runtime.db.transaction() as session:
        await session.execute(insert(telemetry_1m), rows)
    reply = await svc.client.get(url(mine), headers=cook.headers, params={
        "from": (T0 - timedelta(days=7)).isoformat(), "to": T0.isoformat(),
        "metrics": "bowl_temp_c"})
    body = reply.json()
    assert (body["resolution"], body["bucket_s"]) == ("1m", 120)
    assert body["metrics"]["bowl_temp_c"] == [
        [ms(even), 20.0, 27.6, 34.0],  # five samples over two minutes: mean 138 / 5
        [ms(even + timedelta(minutes=2)), 50.0, 50.0, 50.0],
    ]


async def test_a_coarser_resolution_is_served_when_the_asked_one_is_too_fine(
    at_t0: Service,
) -> None:
    svc = at_t0
    cook = await person(svc, "telemetry-coarser@example.com")
    mine = await appliance(svc, cook.id)
    reply = await svc.client.get(url(mine), headers=cook.headers, params={
        "from": ms(T0 - timedelta(hours=5)), "to": ms(T0), "resolution": "raw"})
    assert (reply.json()["resolution"], reply.json()["bucket_s"]) == ("1m", 60)


BAD_QUERIES: list[dict[str, str]] = [
    {"from": "2021-03-10T12:00:00Z", "to": "2021-03-10T11:00:00Z"},  # from after to
    {"from": "2021-03-10T11:00:00Z", "to": "2021-03-10T11:00:00Z"},  # empty
    {"from": "2019-01-01T00:00:00Z", "to": "2021-03-10T11:00:00Z"},  # more than 731 days
    {"from": "2021-03-10T11:00:00"},  # no offset
    {"from": "yesterday"},
    {"from": "-5"},
    {"from": "²"},
    {"to": "2021-03-10T11:00:00+25:00"},
    {"to": "99999999999999999999"},
    {"to": "0001-01-01T00:30:00+01:00"},
    {"metrics": "bowl_temp_c,core_temp_c"},
    {"resolution": "5m"},
]


async def test_bad_queries_are_422(at_t0: Service) -> None:
    svc = at_t0
    cook = await person(svc, "telemetry-bad@example.com")
    mine = await appliance(svc, cook.id)
    for params in BAD_QUERIES:
        reply = await svc.client.get(url(mine), headers=cook.headers, params=params)
        assert_problem(reply, 422, "validation_failed")
    assert_problem(await svc.client.get(f"{API}/telemetry/not-a-uuid", headers=cook.headers),
                   422, "validation_failed")
    unknown = await svc.client.get(url(mine), headers=cook.headers,
                                   params={"metrics": "core_temp_c"})
    assert unknown.json()["errors"][0]["loc"] == ["query", "metrics"]


