"""`epicura seed`: the demo accounts and official recipes (through the service layer, idempotent)
and the synthetic benchmark recipes (bulk-written, searchable, deterministic per seed value)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from epicura.auth.models import User
from epicura.config import Settings
from epicura.kit.errors import ProblemError
from epicura.recipes import repository, service
from epicura.recipes.demo_recipes import demo_recipes
from epicura.recipes.models import PUBLIC, PUBLISHED, Recipe, RecipeVersion
from epicura.recipes.rules import program_violations
from epicura.recipes.schemas import AwaitUserStep, VersionContent
from epicura.recipes.seed import (
    ADMIN_EMAIL,
    DEMO_EMAIL,
    seed_demo,
    seed_synthetic,
    synthetic_contents,
)
from tests.conftest import base_settings
from tests.e2e import process_env, run_cli
from tests.support import API, Mailbox, Service, bearer, running

pytestmark = pytest.mark.anyio

ADMIN_PASSWORD = "test_seed admin passphrase"
DEMO_PASSWORD = "test_seed demo passphrase"
MOTION = {"heat", "stir", "blend", "knead", "steam"}


async def _me(svc: Service, email: str, password: str) -> dict[str, Any]:
    login = await svc.login(email, password)
    assert login.status_code == 200, login.text
    me = await svc.client.get(f"{API}/users/me", headers=bearer(login.json()))
    assert me.status_code == 200, me.text
    found: dict[str, Any] = me.json()
    return found


async def _snapshot(svc: Service) -> dict[str, Any]:
    """Everything a second seeding must leave exactly as it was."""
    async with svc.runtime.db.transaction() as session:
        users = (await session.execute(
            select(User.email, User.role, User.password_hash, User.updated_at).order_by(User.email)
        )).all()
        recipes = (await session.execute(
            select(Recipe.id, Recipe.current_version, Recipe.status, Recipe.updated_at)
            .order_by(Recipe.id)
        )).all()
        versions = await session.scalar(select(func.count()).select_from(RecipeVersion))
    return {"users": users, "recipes": recipes, "versions": versions}


async def _all_listed(svc: Service, **params: Any) -> list[str]:
    """Every recipe id of an anonymous listing, following the cursor to the end."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = await svc.client.get(f"{API}/recipes", params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        ids += [item["id"] for item in body["items"]]
        cursor = body.get("next_cursor")
        if not cursor:
            return ids


# --- the demo set ---------------------------------------------------------------------------


async def test_demo_seed_loads_publishable_official_recipes_and_runs_twice_unchanged(
    svc: Service,
) -> None:
    report = await seed_demo(svc.runtime, admin_password=ADMIN_PASSWORD)
    assert report.admin.created and report.admin.generated_password is None
    assert report.demo.created
    demo_password = report.demo.generated_password
    assert demo_password is not None and len(demo_password) >= 16
    expected = demo_recipes()
    assert len(expected) >= 30
    assert sorted(report.created) == sorted(r["title"] for r in expected)
    assert report.existing == 0

    async with svc.runtime.db.transaction() as session:
        admin = await session.scalar(select(User).where(User.email == ADMIN_EMAIL))
        assert admin is not None and admin.role == "admin"
        profiles = await service.profiles_by_key(session)
        assert "epicura-1/rev-a" in profiles
        recipes = (await session.scalars(
            select(Recipe).where(Recipe.owner_id == admin.id))).all()
        contents: list[VersionContent] = []
        for recipe in recipes:
            assert (recipe.is_official, recipe.status, recipe.visibility) == (
                True, PUBLISHED, PUBLIC), recipe.title
            content = await service.current_content(session, recipe)
            assert program_violations(content, profiles) == [], recipe.title
            actions = {step.action for step in content.steps}
            assert actions & MOTION, recipe.title
            assert "await_user" in actions, recipe.title
            assert all(ingredient.key for ingredient in content.ingredients)
            contents.append(content)
    assert len(contents) == len(expected) >= 30
    assert len({c.title for c in contents}) == len(contents)
    used = {step.action for c in contents for step in c.steps}
    assert {"heat", "stir", "blend", "knead", "steam", "weigh", "await_user", "rest",
            "manual"} <= used
    assert len({c.cuisine for c in contents}) >= 8
    assert len({c.category for c in contents}) >= 8
    assert {c.difficulty for c in contents} == {"easy", "medium", "hard"}
    assert 0 < sum(c.nutrition is not None for c in contents) < len(contents)
    prompts = [s.params.prompt for c in contents for s in c.steps
               if isinstance(s, AwaitUserStep)]
    assert "Add the onion and garlic" in prompts

    # Anyone sees them; both accounts can sign in with the password they were given.
    official = await _all_listed(svc, official="true")
    assert sorted(official) == sorted(str(r.id) for r in recipes)
    assert (await _me(svc, ADMIN_EMAIL, ADMIN_PASSWORD))["role"] == "admin"
    assert (await _me(svc, DEMO_EMAIL, demo_password))["role"] == "user"

    before = await _snapshot(svc)
    again = await seed_demo(svc.runtime, admin_password=ADMIN_PASSWORD)
    assert again.created == [] and again.existing == len(expected)
    assert not again.admin.created and not again.admin.password_changed
    assert not again.demo.created and again.demo.generated_password is None
    assert await _snapshot(svc) == before
    # An existing account keeps its password unless a different one is given.
    assert (await _me(svc, DEMO_EMAIL, demo_password))["email"] == DEMO_EMAIL

    changed = await seed_demo(svc.runtime, admin_password=ADMIN_PASSWORD,
                              demo_password=DEMO_PASSWORD)
    assert changed.demo.password_changed and changed.created == []
    assert (await svc.login(DEMO_EMAIL, demo_password)).status_code == 401
    assert (await _me(svc, DEMO_EMAIL, DEMO_PASSWORD))["role"] == "user"


async def test_demo_seed_refuses_a_common_password_and_writes_nothing(svc: Service) -> None:
    with pytest.raises(ProblemError) as refused:
        await seed_demo(svc.runtime, admin_password=ADMIN_PASSWORD, demo_password="password1")
    assert refused.value.code == "password_too_common"
    async with svc.runtime.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0
        assert await session.scalar(select(func.count()).select_from(Recipe)) == 0


# --- synthetic recipes ----------------------------------------------------------------------


async def _shas(svc: Service, ids: list[uuid.UUID]) -> list[str]:
    async with svc.runtime.db.transaction() as session:
        found = dict((await session.execute(
            select(RecipeVersion.recipe_id, RecipeVersion.sha256)
            .where(RecipeVersion.recipe_id.in_(ids)))).all())
    return [found[i] for i in ids]


async def test_synthetic_recipes_are_valid_public_searchable_and_deterministic(
    svc: Service,
) -> None:
    # An anonymous page cached before seeding must not hide the new recipes afterwards.
    assert (await svc.client.get(f"{API}/recipes", params={"limit": 100})).status_code == 200
    progress: list[int] = []
    report = await seed_synthetic(svc.runtime, 500, seed_value=7, batch_size=128,
                                  on_progress=progress.append)
    assert sorted(progress) == [116, 128, 128, 128]  # two writers: any order
    assert len(report.recipe_ids) == len(set(report.recipe_ids)) == 500
    admin_password = report.admin.generated_password
    assert report.admin.created and admin_password is not None
    assert (await _me(svc, ADMIN_EMAIL, admin_password))["role"] == "admin"

    async with svc.runtime.db.transaction() as session:
        admin_id = await session.scalar(select(User.id).where(User.email == ADMIN_EMAIL))
        profiles = await service.profiles_by_key(session)
        rows = (await session.execute(
            select(Recipe, RecipeVersion)
            .join(RecipeVersion, (RecipeVersion.recipe_id == Recipe.id)
                  & (RecipeVersion.version == Recipe.current_version))
            .where(Recipe.id.in_(report.recipe_ids)))).all()
        indexed = await session.scalar(text(
            "SELECT count(*) FROM recipes WHERE id = ANY(:ids) AND search_vector IS NOT NULL "
            "AND search_vector <> ''::tsvector"), {"ids": report.recipe_ids})
    assert len(rows) == 500 and indexed == 500
    for recipe, version in rows:
        assert (recipe.owner_id, recipe.status, recipe.visibility, recipe.current_version) == (
            admin_id, PUBLISHED, PUBLIC, 1)
        content = VersionContent.model_validate(version.content)
        # Stored exactly as the service would have stored it, and cookable on the default.
        assert service.content_json(content) == version.content
        assert version.sha256 == service.content_sha256(version.content)
        assert program_violations(content, profiles) == []
        assert recipe.title == content.title and recipe.tags == content.tags
        assert recipe.total_minutes == content.total_minutes
        assert recipe.search_text == repository.search_text_of(version.content)
    assert len({recipe.title for recipe, _ in rows}) > 400
    assert len({recipe.category for recipe, _ in rows}) == 5

    listed = await _all_listed(svc)
    assert {str(i) for i in report.recipe_ids} <= set(listed)
    by_id = {str(recipe.id): recipe for recipe, _ in rows}
    for rid in (str(report.recipe_ids[0]), str(report.recipe_ids[250]),
                str(report.recipe_ids[-1])):
        found = await svc.client.get(f"{API}/recipes",
                                     params={"q": by_id[rid].title, "limit": 100})
        assert found.status_code == 200, found.text
        assert rid in [item["id"] for item in found.json()["items"]], by_id[rid].title

    # Same seed value, same recipes (a shorter run is a prefix); another seed, others.
    again = await seed_synthetic(svc.runtime, 60, seed_value=7, batch_size=25)
    assert not again.admin.created and again.admin.generated_password is None
    assert await _shas(svc, again.recipe_ids) == (await _shas(svc, report.recipe_ids))[:60]
    other = await seed_synthetic(svc.runtime, 60, seed_value=8)
    assert await _shas(svc, other.recipe_ids) != await _shas(svc, again.recipe_ids)
    assert [c["title"] for c in synthetic_contents(7, 60)] == [
        by_id[str(i)].title for i in report.recipe_ids[:60]]


async def test_synthetic_recipes_on_the_embedded_default(embedded: Service) -> None:
    before = await embedded.client.get(f"{API}/recipes", params={"limit": 100})
    assert before.json()["items"] == []
    report = await seed_synthetic(embedded.runtime, 150, seed_value=11, batch_size=64)
    assert len(report.recipe_ids) == 150
    listed = await _all_listed(embedded)
    assert sorted(listed) == sorted(str(i) for i in report.recipe_ids)
    title = next(iter(synthetic_contents(11, 1)))["title"]
    found = await embedded.client.get(f"{API}/recipes", params={"q": title, "limit": 100})
    assert found.status_code == 200, found.text
    assert str(report.recipe_ids[0]) in [item["id"] for item in found.json()["items"]]


# --- the command line -----------------------------------------------------------------------


async def _counts(url: str) -> dict[str, int]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return {
                "users": int(await conn.scalar(text("SELECT count(*) FROM users")) or 0),
                "official": int(await conn.scalar(text(
                    "SELECT count(*) FROM recipes WHERE is_official AND status = 'published' "
                    "AND visibility = 'public'")) or 0),
                "recipes": int(await conn.scalar(text("SELECT count(*) FROM recipes")) or 0),
                "versions": int(await conn.scalar(
                    text("SELECT count(*) FROM recipe_versions")) or 0),
            }
    finally:
        await engine.dispose()


async def test_seed_command_on_the_embedded_default(
    tmp_path: Path, smtp: tuple[int, Mailbox]
) -> None:
    cwd, data_dir = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    env = process_env(DATA_DIR=str(data_dir))
    nothing = await run_cli("seed", cwd=cwd, env=env)
    assert nothing.returncode == 2 and "--demo" in nothing.stderr

    first = await run_cli("seed", "--demo", "--admin-password", ADMIN_PASSWORD, cwd=cwd, env=env)
    assert first.returncode == 0, first.output
    assert ADMIN_PASSWORD not in first.output
    assert f"created {ADMIN_EMAIL} with the given password" in first.stdout
    match = re.search(rf"created {re.escape(DEMO_EMAIL)} with password: (\S+)", first.stdout)
    assert match, first.stdout
    demo_password = match.group(1)
    total = len(demo_recipes())
    assert f"demo recipes: {total} created, 0 already there" in first.stdout

    url = Settings(data_dir=data_dir, _env_file=None).sqlalchemy_url
    counts = await _counts(url)
    assert counts == {"users": 2, "official": total, "recipes": total, "versions": total}

    second = await run_cli("seed", "--demo", cwd=cwd, env=env)
    assert second.returncode == 0, second.output
    assert f"demo recipes: 0 created, {total} already there" in second.stdout
    assert "password:" not in second.stdout and "unchanged" in second.stdout
    assert await _counts(url) == counts

    bulk = await run_cli("seed", "--recipes", "40", "--seed-value", "3", cwd=cwd, env=env)
    assert bulk.returncode == 0, bulk.output
    assert "synthetic recipes: 40 created" in bulk.stdout
    assert (await _counts(url))["recipes"] == total + 40

    weak = await run_cli("seed", "--demo", "--demo-password", "short", cwd=cwd, env=env)
    assert weak.returncode != 0 and "at least 8 characters" in weak.stderr

    settings = base_settings(tmp_path, smtp[0], data_dir=data_dir)
    async with running(settings, smtp[1]) as app:
        assert (await _me(app, DEMO_EMAIL, demo_password))["role"] == "user"
        assert (await _me(app, ADMIN_EMAIL, ADMIN_PASSWORD))["role"] == "admin"
        official = await _all_listed(app, official="true")
        assert len(official) == total
