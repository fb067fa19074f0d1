"""The whole appliance story on the embedded default (SQLite, in-process Redis stand-in), bad
input that must never be a 500, and no device secret or claim code in any log line."""

from __future__ import annotations

import asyncio
import io
import uuid
from typing import Any

import pytest

from epicura.appliances.commands import expire_commands, record_command_result
from epicura.auth import service as auth_service
from epicura.kit import clock
from tests.appliances.conftest import ADMIN_EMAIL, Factory, assert_problem, user
from tests.auth.test_secrets_in_logs import json_logs  # noqa: F401 - the fixture
from tests.support import API, STRONG_PASSWORD, Service, bearer

pytestmark = pytest.mark.anyio


async def embedded_factory(embedded: Service) -> Factory:
    async with embedded.runtime.db.transaction() as session:
        await auth_service.create_admin(embedded.runtime, session, ADMIN_EMAIL, STRONG_PASSWORD,
                                        "Fleet Admin")
    reply = await embedded.login(ADMIN_EMAIL)
    assert reply.status_code == 200, reply.text
    return Factory(embedded, bearer(reply.json()))


async def test_the_story_on_the_embedded_default(embedded: Service) -> None:
    factory = await embedded_factory(embedded)
    client = embedded.client
    csv = "serial,model,hw_revision,factory_secret\nEMB-000001,epicura-1,rev-a,{}\n"
    secret = "embedded-factory-secret-1"
    imported = await client.post(f"{API}/admin/appliances/import",
                                 content=csv.format(secret).encode(),
                                 headers={**factory.admin, "Content-Type": "text/csv"})
    assert imported.json()["created"] == 1
    again = await factory.import_rows([{"serial": "emb-000001", "model": "epicura-1",
                                         "hw_revision": "rev-a", "factory_secret": secret}])
    assert again["skipped"] == 1
    row = {"serial": "EMB-000001", "model": "epicura-1", "hw_revision": "rev-a",
           "factory_secret": secret}
    provisioned = (await factory.provision(row)).json()
    token = (await factory.token(provisioned["device_id"],
                                 provisioned["device_secret"])).json()["access_token"]
    device_headers = bearer(token)
    cooks = [await user(embedded, f"test-embedded-cook-{n}@example.com") for n in range(3)]
    code = (await client.post(f"{API}/device/claim-codes", headers=device_headers)).json()["code"]
    claims = await asyncio.gather(*(client.post(f"{API}/appliances/claim",
                                                json={"claim_code": code}, headers=cook)
                                    for cook in cooks))
    assert sorted(reply.status_code for reply in claims) == [201, 404, 404]
    owner = cooks[[reply.status_code for reply in claims].index(201)]
    device_id = provisioned["device_id"]
    await factory.online(device_id)
    url = f"{API}/appliances/{device_id}"
    patched = await client.patch(url, json={"settings": {"units": "imperial"}}, headers=owner)
    assert patched.json()["config_version"] == 1
    sent = await client.post(f"{url}/commands", json={"name": "identify"}, headers=owner)
    assert sent.status_code == 202, sent.text
    request_id = sent.json()["request_id"]
    async with embedded.runtime.db.transaction() as session:
        assert await record_command_result(session, uuid.UUID(device_id), request_id, "done",
                                           None)
    shown = await client.get(f"{url}/commands/{request_id}", headers=owner)
    assert shown.json()["status"] == "done"
    async with embedded.runtime.db.transaction() as session:
        assert await expire_commands(session, clock.utcnow()) == 0
    listed = await client.get(f"{API}/admin/appliances", params={"online": "true", "q": "emb"},
                              headers=factory.admin)
    assert [item["id"] for item in listed.json()["items"]] == [device_id]
    assert (await client.delete(url, headers=owner)).status_code == 204
    retired = await client.post(f"{API}/admin/appliances/{device_id}/decommission",
                                headers=factory.admin)
    assert retired.json()["lifecycle"] == "decommissioned"
    assert_problem(await factory.provision(row), 403, "provision_refused")


BAD_BODIES: list[tuple[str, Any]] = [
    ("/device/provision", {"serial": "A" * 65, "factory_secret": "x", "model": "m",
                           "hw_revision": "r", "firmware_version": "1"}),
    ("/device/provision", {"serial": "A\u0000B", "factory_secret": "x" * 20, "model": "m",
                           "hw_revision": "r", "firmware_version": "1.0"}),
    ("/device/provision", {"serial": 7, "factory_secret": ["x"], "model": None,
                           "hw_revision": {}, "firmware_version": 1.5}),
    ("/device/provision", []),
    ("/device/token", {"device_id": "x" * 65, "device_secret": "y"}),
    ("/device/token", {"device_id": 1, "device_secret": None}),
    ("/appliances/claim", {"claim_code": "ABC\u0000DEFG"}),
    ("/appliances/claim", {"claim_code": "A" * 33}),
    ("/appliances/claim", {"claim_code": 12345678}),
]


async def test_bad_input_is_refused_not_crashed(svc: Service, factory: Factory) -> None:
    cook = await user(svc, "test-hygiene-bad-input@example.com")
    for path, body in BAD_BODIES:
        reply = await svc.client.post(f"{API}{path}", json=body, headers=cook)
        assert reply.status_code in (403, 422), (path, body, reply.text)
    garbage = await svc.client.post(f"{API}/device/provision", content=b"{not json",
                                    headers={"Content-Type": "application/json"})
    assert_problem(garbage, 400, "malformed_body")
    form = await svc.client.post(f"{API}/device/token", content=b"device_id=x",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_problem(form, 415, "unsupported_media_type")
    nul_row = {"serial": "TST-NUL", "model": "epicura-1", "hw_revision": "rev-a",
               "factory_secret": "secret\u0000secret-secret"}
    result = await factory.import_rows([nul_row, {"serial": "\u0000"}])
    assert result["invalid"] == 2
    deep = "[" * 5000 + "]" * 5000
    nested = await svc.client.post(f"{API}/admin/appliances/import", content=deep.encode(),
                                   headers={**factory.admin, "Content-Type": "application/json"})
    assert nested.status_code in (400, 422)
    for params in ({"limit": 0}, {"limit": 101}, {"online": "maybe"}, {"channel": "nightly"},
                   {"q": "a\u0000"}):
        reply = await svc.client.get(f"{API}/admin/appliances", params=params,
                                     headers=factory.admin)
        assert_problem(reply, 422, "validation_failed")


async def test_no_secret_reaches_the_logs(svc: Service, factory: Factory,
                                          json_logs: io.StringIO) -> None:  # noqa: F811
    cook = await user(svc, "test-hygiene-logs@example.com")
    row = factory.row()
    await factory.import_rows([row])
    refused = await factory.provision({**row, "factory_secret": row["factory_secret"] + "!"})
    assert refused.status_code == 403
    provisioned = (await factory.provision(row)).json()
    token = (await factory.token(provisioned["device_id"], provisioned["device_secret"])).json()
    headers = bearer(token["access_token"])
    code = (await svc.client.post(f"{API}/device/claim-codes", headers=headers)).json()["code"]
    wrong = "ZZZZZZZZ" if code != "ZZZZZZZZ" else "YYYYYYYY"
    await svc.client.post(f"{API}/appliances/claim", json={"claim_code": wrong}, headers=cook)
    claimed = await svc.client.post(f"{API}/appliances/claim", json={"claim_code": code},
                                    headers=cook)
    assert claimed.status_code == 201
    logs = json_logs.getvalue()
    assert "provision_refused" in logs and "claim_refused" in logs  # the logs were captured
    for secret in (row["factory_secret"], provisioned["device_secret"], token["access_token"],
                   code, wrong):
        assert secret not in logs


async def test_claim_codes_are_never_replayed(svc: Service, factory: Factory) -> None:
    """A claim code is a secret: the Idempotency-Key store must not keep one for replay."""
    device = await factory.device()
    headers = {**device.headers, "Idempotency-Key": "code-1"}
    first = await svc.client.post(f"{API}/device/claim-codes", headers=headers)
    second = await svc.client.post(f"{API}/device/claim-codes", headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["code"] != second.json()["code"]


async def test_openapi_declares_the_errors(svc: Service) -> None:
    document = svc.app.openapi()
    paths = document["paths"]

    def codes(path: str, method: str, status: str) -> list[str]:
        found: list[str] = paths[f"{API}{path}"][method]["responses"][status]["x-codes"]
        return found

    assert "claim_code_invalid" in codes("/appliances/claim", "post", "404")
    assert "rate_limited" in codes("/appliances/claim", "post", "429")
    commands = "/appliances/{appliance_id}/commands"
    assert "appliance_offline" in codes(commands, "post", "409")
    assert "command_not_allowed" in codes(commands, "post", "422")
    assert "provision_refused" in codes("/device/provision", "post", "403")
    assert "invalid_credentials" in codes("/device/token", "post", "401")
    assert "appliance_already_paired" in codes("/device/claim-codes", "post", "409")
    assert "forbidden" in codes("/admin/appliances/import", "post", "403")
    body = paths[f"{API}/admin/appliances/import"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/csv"}
