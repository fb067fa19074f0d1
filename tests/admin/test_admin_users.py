"""Admin user management (`/admin/users*`): search and pagination, reading and changing a user,
ending their sessions, and who may do it (T10 d/e, T18)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from epicura.auth import service as auth_service
from epicura.auth.models import User
from epicura.kit.audit import AuditEvent
from epicura.kit.errors import PROBLEM_MEDIA_TYPE
from tests.support import API, STRONG_PASSWORD, Service, bearer

pytestmark = pytest.mark.anyio

ADMIN_EMAIL = "test-admin-users-admin@example.com"
USERS = f"{API}/admin/users"


def assert_problem(reply: httpx2.Response, status: int, code: str) -> None:
    assert reply.status_code == status, (reply.request.method, reply.request.url, reply.text)
    assert reply.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert reply.json()["code"] == code


@pytest.fixture
async def admin(svc: Service) -> dict[str, Any]:
    async with svc.runtime.db.transaction() as session:
        user = await auth_service.create_admin(svc.runtime, session, ADMIN_EMAIL,
                                               STRONG_PASSWORD, "Chief Admin")
        admin_id = str(user.id)
    reply = await svc.login(ADMIN_EMAIL)
    assert reply.status_code == 200
    return {**reply.json(), "id": admin_id}


async def signed_up(svc: Service, address: str) -> dict[str, Any]:
    tokens = await svc.signed_up(address)
    me = (await svc.client.get(f"{API}/users/me", headers=bearer(tokens))).json()
    return {**tokens, "id": me["id"]}


async def audit_rows(svc: Service, action: str, target: str) -> list[AuditEvent]:
    async with svc.runtime.db.sessions() as session:
        rows = await session.scalars(select(AuditEvent).where(
            AuditEvent.action == action, AuditEvent.target_id == target))
        return list(rows)


async def test_list_filters_by_text_role_and_state(svc: Service, admin: dict[str, Any]) -> None:
    cook = await signed_up(svc, "test-admin-users-filter-cook@example.com")
    await signed_up(svc, "test-admin-users-filter-baker@example.com")
    auth = bearer(admin)
    reply = await svc.client.get(USERS, params={"q": "filter-"}, headers=auth)
    assert reply.status_code == 200
    page = reply.json()
    assert {u["email"] for u in page["items"]} == {
        "test-admin-users-filter-cook@example.com", "test-admin-users-filter-baker@example.com"}
    assert page["next_cursor"] is None
    assert not ({"password_hash", "deleted_at"} & set(page["items"][0]))
    # `q` matches the display name too, case-insensitively, and treats % and _ literally.
    names = await svc.client.get(USERS, params={"q": "TEST COOK"}, headers=auth)
    assert len(names.json()["items"]) >= 2
    literal = await svc.client.get(USERS, params={"q": "filter%"}, headers=auth)
    assert literal.json()["items"] == []

    admins = await svc.client.get(USERS, params={"role": "admin"}, headers=auth)
    assert [u["email"] for u in admins.json()["items"]] == [ADMIN_EMAIL]
    users = await svc.client.get(USERS, params={"role": "user", "q": "test-admin-users"},
                                 headers=auth)
    assert ADMIN_EMAIL not in {u["email"] for u in users.json()["items"]}

    disabled = await svc.client.patch(f"{USERS}/{cook['id']}", json={"is_active": False},
                                      headers=auth)
    assert disabled.status_code == 200 and disabled.json()["is_active"] is False
    inactive = await svc.client.get(USERS, params={"active": "false"}, headers=auth)
    assert [u["id"] for u in inactive.json()["items"]] == [cook["id"]]
    active = await svc.client.get(USERS, params={"active": "true", "q": "filter-"}, headers=auth)
    assert [u["email"] for u in active.json()["items"]] == [
        "test-admin-users-filter-baker@example.com"]

    for bad in ({"role": "root"}, {"active": "maybe"}, {"limit": 0}, {"limit": 101},
                {"q": "x" * 101}):
        assert_problem(await svc.client.get(USERS, params=bad, headers=auth), 422,
                       "validation_failed")
    assert_problem(await svc.client.get(USERS, params={"cursor": "not-a-cursor"}, headers=auth),
                   400, "invalid_cursor")


async def test_cursor_pagination_walks_every_user_once(svc: Service,
                                                       admin: dict[str, Any]) -> None:
    expected = set()
    for n in range(5):
        expected.add((await signed_up(svc, f"test-admin-users-page-{n}@example.com"))["id"])
    seen: list[str] = []
    pages = 0
    params: dict[str, Any] = {"q": "test-admin-users-page-", "limit": 2}
    while True:
        reply = await svc.client.get(USERS, params=params, headers=bearer(admin))
        assert reply.status_code == 200
        page = reply.json()
        pages += 1
        assert len(page["items"]) <= 2
        seen += [u["id"] for u in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5 and set(seen) == expected
    # Newest first.
    created = [u["created_at"] for u in (await svc.client.get(
        USERS, params={"q": "test-admin-users-page-"}, headers=bearer(admin))).json()["items"]]
    assert created == sorted(created, reverse=True)


async def test_get_and_patch_a_user(svc: Service, admin: dict[str, Any]) -> None:
    cook = await signed_up(svc, "test-admin-users-patch@example.com")
    auth = bearer(admin)
    reply = await svc.client.get(f"{USERS}/{cook['id']}", headers=auth)
    assert reply.status_code == 200
    assert reply.json()["email"] == "test-admin-users-patch@example.com"
    assert reply.json()["role"] == "user"

    promoted = await svc.client.patch(f"{USERS}/{cook['id']}", json={"role": "admin"},
                                      headers=auth)
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    [event] = await audit_rows(svc, "admin.user.role_changed", cook["id"])
    assert str(event.actor_id) == admin["id"] and event.actor_type == "admin"
    assert event.details == {"before": "user", "after": "admin"}
    assert event.request_id and re.match(r"^[0-9a-f-]{36}$", event.request_id)
    # Tokens carry the role: the user's sessions ended, the next login carries the new one.
    assert (await svc.client.get(f"{API}/users/me", headers=bearer(cook))).status_code == 401
    relogged = (await svc.login("test-admin-users-patch@example.com")).json()
    assert (await svc.client.get(USERS, headers=bearer(relogged))).status_code == 200

    demoted = await svc.client.patch(f"{USERS}/{cook['id']}", json={"role": "user"},
                                     headers=auth)
    assert demoted.json()["role"] == "user"
    assert len(await audit_rows(svc, "admin.user.role_changed", cook["id"])) == 2
    # The same value again changes nothing and records nothing.
    same = await svc.client.patch(f"{USERS}/{cook['id']}", json={"role": "user"}, headers=auth)
    assert same.status_code == 200
    assert len(await audit_rows(svc, "admin.user.role_changed", cook["id"])) == 2

    disabled = await svc.client.patch(f"{USERS}/{cook['id']}", json={"is_active": False},
                                      headers=auth)
    assert disabled.json()["is_active"] is False
    assert len(await audit_rows(svc, "admin.user.disabled", cook["id"])) == 1
    assert (await svc.login("test-admin-users-patch@example.com")).status_code == 401
    enabled = await svc.client.patch(f"{USERS}/{cook['id']}", json={"is_active": True},
                                     headers=auth)
    assert enabled.json()["is_active"] is True
    assert (await svc.login("test-admin-users-patch@example.com")).status_code == 200

    for body in ({"role": "superuser"}, {"is_active": "nope"}, {"email": "x@example.com"},
                 {"role": "admin", "password_hash": "x"}):
        assert_problem(await svc.client.patch(f"{USERS}/{cook['id']}", json=body, headers=auth),
                       422, "validation_failed")


async def test_unknown_and_malformed_ids(svc: Service, admin: dict[str, Any]) -> None:
    auth = bearer(admin)
    missing = uuid.uuid4()
    assert_problem(await svc.client.get(f"{USERS}/{missing}", headers=auth), 404, "not_found")
    assert_problem(await svc.client.patch(f"{USERS}/{missing}", json={"role": "admin"},
                                          headers=auth), 404, "not_found")
    assert_problem(await svc.client.post(f"{USERS}/{missing}/revoke-sessions", headers=auth),
                   404, "not_found")
    assert_problem(await svc.client.get(f"{USERS}/not-a-uuid", headers=auth), 422,
                   "validation_failed")


async def test_an_admin_cannot_demote_or_disable_themselves(svc: Service,
                                                            admin: dict[str, Any]) -> None:
    auth = bearer(admin)
    me = f"{USERS}/{admin['id']}"
    for body in ({"role": "user"}, {"is_active": False}, {"role": "user", "is_active": False},
                 {"role": "admin", "is_active": False}):
        assert_problem(await svc.client.patch(me, json=body, headers=auth), 409,
                       "cannot_modify_self")
    async with svc.runtime.db.sessions() as session:
        row = await session.get(User, uuid.UUID(admin["id"]))
        assert row is not None and (row.role, row.is_active) == ("admin", True)
    # Harmless self-updates are fine.
    assert (await svc.client.patch(me, json={"role": "admin"}, headers=auth)).status_code == 200
    assert (await svc.client.get(f"{API}/users/me", headers=auth)).status_code == 200


async def test_revoke_sessions_ends_every_session_of_the_user(svc: Service,
                                                              admin: dict[str, Any]) -> None:
    cook = await signed_up(svc, "test-admin-users-revoke@example.com")
    phone = (await svc.login("test-admin-users-revoke@example.com", session_name="Phone")).json()
    bystander = await signed_up(svc, "test-admin-users-bystander@example.com")
    reply = await svc.client.post(f"{USERS}/{cook['id']}/revoke-sessions", headers=bearer(admin))
    assert reply.status_code == 204
    for tokens in (cook, phone):
        assert (await svc.client.get(f"{API}/users/me", headers=bearer(tokens))).status_code == 401
        refresh = await svc.client.post(f"{API}/auth/refresh",
                                        json={"refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 401
    assert (await svc.client.get(f"{API}/users/me", headers=bearer(bystander))).status_code == 200
    [event] = await audit_rows(svc, "auth.sessions_revoked.revoked_by_admin", cook["id"])
    assert str(event.actor_id) == admin["id"] and event.details == {"sessions": 2}
    # The user can sign in again.
    assert (await svc.login("test-admin-users-revoke@example.com")).status_code == 200


def admin_operations(svc: Service) -> list[tuple[str, str]]:
    """Every admin operation the app serves, read from its own document (so a new admin route
    is covered without touching this test)."""
    document = svc.app.openapi()
    operations = [
        (method.upper(), re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path))
        for path, item in document["paths"].items() if path.startswith(f"{API}/admin/")
        for method in item
    ]
    assert {m for m, _ in operations} >= {"GET", "PATCH", "POST"}
    return operations


async def test_a_plain_user_gets_403_and_nobody_401_on_every_admin_route(
    svc: Service, admin: dict[str, Any],
) -> None:
    user = await signed_up(svc, "test-admin-users-plain@example.com")
    target = f"{USERS}/{user['id']}"
    operations = [*admin_operations(svc), ("GET", target), ("PATCH", target),
                  ("POST", f"{target}/revoke-sessions")]
    for method, path in operations:
        body = {"role": "admin"} if method in ("PATCH", "POST", "PUT") else None
        reply = await svc.client.request(method, path, json=body, headers=bearer(user))
        assert_problem(reply, 403, "forbidden")
        reply = await svc.client.request(method, path, json=body)
        assert_problem(reply, 401, "unauthorized")
    # Nothing changed: the user did not promote themselves and still has their session.
    me = await svc.client.get(f"{API}/users/me", headers=bearer(user))
    assert me.status_code == 200 and me.json()["role"] == "user"
    assert await audit_rows(svc, "admin.user.role_changed", user["id"]) == []
    # The role is read from the database, not the token: a demoted admin is refused at once.
    second = await signed_up(svc, "test-admin-users-second@example.com")
    promoted = await svc.client.patch(f"{USERS}/{second['id']}", json={"role": "admin"},
                                      headers=bearer(admin))
    assert promoted.status_code == 200
    second_admin = (await svc.login("test-admin-users-second@example.com")).json()
    assert (await svc.client.get(USERS, headers=bearer(second_admin))).status_code == 200
    async with svc.runtime.db.transaction() as session:
        row = await session.get(User, uuid.UUID(second["id"]))
        assert row is not None
        row.role = "user"  # e.g. changed directly in the database, tokens still say admin
    assert_problem(await svc.client.get(USERS, headers=bearer(second_admin)), 403, "forbidden")
