"""The `epicura` command line, run as a real subprocess in an empty temp folder with a controlled
environment (nothing inherited from the shell, no `.env`)."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from epicura.cli import main as cli_main
from epicura.config import Settings
from epicura.migrate import alembic_config
from tests.conftest import REDIS_URL, base_settings, delete_keys
from tests.e2e import Result, fresh_pg_database, is_empty, pg_url, process_env, run_cli
from tests.support import API, STRONG_PASSWORD, Mailbox, bearer, running

pytestmark = pytest.mark.anyio

ARGON2ID_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"
GOOD_JWT_SECRET = "cli-test-jwt-secret-" + "j" * 40
GOOD_REFRESH_SECRET = "cli-test-refresh-secret-" + "r" * 40


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    return folder


def _head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config(Settings(_env_file=None))).get_current_head()
    assert head is not None
    return head


def _command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(_command_paths(command, (*prefix, name)))
    return paths


# --- help ----------------------------------------------------------------------------------


async def test_help_works_on_every_command_and_group(cwd: Path) -> None:
    paths = _command_paths(cli_main)
    expected = {("serve",), ("worker",), ("bridge",), ("db",), ("db", "upgrade"),
                ("db", "downgrade"), ("db", "current"), ("admin",), ("admin", "create"),
                ("config",), ("config", "check")}
    assert expected <= set(paths)
    for path in [(), *paths]:
        for flag in ("--help", "-h") if path in {(), ("db", "upgrade")} else ("--help",):
            result = await run_cli(*path, flag, cwd=cwd, env=process_env())
            assert result.returncode == 0, (path, result.output)
            usage = f"Usage: epicura {' '.join(path)}".rstrip()
            assert result.stdout.startswith(usage), result.stdout
            if isinstance(command := _lookup(path), click.Group):
                for child in command.commands:
                    assert child in result.stdout, (path, child)
    assert is_empty(cwd)  # --help touches nothing (no database file created)


def _lookup(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli_main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


# --- config check --------------------------------------------------------------------------


def _settings_json(result: Result) -> dict[str, object]:
    shown, _, _ = result.stdout.partition("\n\n")
    settings: dict[str, object] = json.loads(shown)
    return settings


async def test_config_check_masks_secrets(cwd: Path) -> None:
    jwt_secret = "jwt-" + secrets.token_urlsafe(32)
    refresh_secret = "refresh-" + secrets.token_urlsafe(32)
    db_password = "dbpw-" + secrets.token_urlsafe(12)
    redis_password = "redispw-" + secrets.token_urlsafe(12)
    smtp_password = "smtppw-" + secrets.token_urlsafe(12)
    env = process_env(
        JWT_SECRET=jwt_secret, JWT_REFRESH_SECRET=refresh_secret,
        JWT_PREVIOUS_SECRET=jwt_secret[::-1],
        DATABASE_URL=f"postgresql://epicura:{db_password}@db.internal:5432/epicura",
        REDIS_URL=f"redis://:{redis_password}@cache.internal:6379/0",
        SMTP_URL=f"smtp://mailer:{smtp_password}@smtp.internal:587",
    )
    result = await run_cli("config", "check", cwd=cwd, env=env)
    assert result.returncode == 0, result.output
    for secret in (jwt_secret, refresh_secret, jwt_secret[::-1], db_password, redis_password,
                   smtp_password):
        assert secret not in result.output
    shown = _settings_json(result)
    assert shown["JWT_SECRET"] == shown["JWT_REFRESH_SECRET"] == "********"
    assert shown["JWT_PREVIOUS_SECRET"] == "********"
    assert shown["DATABASE_URL"] == "postgresql://epicura:********@db.internal:5432/epicura"
    assert shown["REDIS_URL"] == "redis://:********@cache.internal:6379/0"
    assert shown["SMTP_URL"] == "smtp://mailer:********@smtp.internal:587"
    assert shown["EPICURA_ENV"] == "development"
    # Nothing stops this configuration from running in production; the warnings remain.
    assert "ready for production" in result.stdout
    assert "missing or unsafe" not in result.stdout
    assert "PUBLIC_BASE_URL is not https" in result.stdout


async def test_config_check_lists_what_production_would_refuse(cwd: Path) -> None:
    result = await run_cli("config", "check", cwd=cwd, env=process_env())
    assert result.returncode == 0, result.output  # development: a report, not a refusal
    shown = _settings_json(result)
    assert shown["DATABASE_URL"] is None and shown["REDIS_URL"] is None  # nothing inherited
    _, _, report = result.stdout.partition("missing or unsafe for production:")
    for problem in ("JWT_SECRET is the development default",
                    "JWT_REFRESH_SECRET is the development default",
                    "DATABASE_URL must point at PostgreSQL", "REDIS_URL is not set"):
        assert f"- {problem}" in report
    from epicura.config import DEV_JWT_SECRET, DEV_REFRESH_SECRET

    assert DEV_JWT_SECRET not in result.output and DEV_REFRESH_SECRET not in result.output

    short = await run_cli("config", "check", cwd=cwd, env=process_env(
        JWT_SECRET="short", JWT_REFRESH_SECRET="short"))
    assert "- JWT_SECRET is shorter than 32 bytes" in short.stdout
    assert "- JWT_SECRET and JWT_REFRESH_SECRET must differ" in short.stdout


# --- production refuses unsafe settings ----------------------------------------------------

ALL_DEFAULTS: dict[str, str] = {}
GOOD_SECRETS = {"JWT_SECRET": GOOD_JWT_SECRET, "JWT_REFRESH_SECRET": GOOD_REFRESH_SECRET}
PRODUCTION_CASES: dict[str, tuple[dict[str, str], list[str]]] = {
    "all-defaults": (ALL_DEFAULTS, ["JWT_SECRET is the development default",
                                    "JWT_REFRESH_SECRET is the development default",
                                    "DATABASE_URL must point at PostgreSQL",
                                    "REDIS_URL is not set"]),
    "no-database-no-redis": (GOOD_SECRETS, ["DATABASE_URL must point at PostgreSQL",
                                            "REDIS_URL is not set"]),
    "no-database": ({**GOOD_SECRETS, "REDIS_URL": REDIS_URL},
                    ["DATABASE_URL must point at PostgreSQL"]),
    "no-redis": ({**GOOD_SECRETS, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"},
                 ["REDIS_URL is not set"]),
    "sqlite-database": ({**GOOD_SECRETS, "REDIS_URL": REDIS_URL,
                         "DATABASE_URL": "sqlite+aiosqlite:///./epicura.db"},
                        ["DATABASE_URL must point at PostgreSQL"]),
}
# serve and config check on every case; the worker (same check) on two.
PRODUCTION_RUNS = [
    pytest.param(command, *PRODUCTION_CASES[case], id=f"{'-'.join(command)}-{case}")
    for command in (("serve",), ("config", "check"))
    for case in PRODUCTION_CASES
] + [
    pytest.param(("worker",), *PRODUCTION_CASES[case], id=f"worker-{case}")
    for case in ("all-defaults", "no-redis")
]


def _listed_problems(result: Result, command: tuple[str, ...]) -> set[str]:
    if command == ("config", "check"):
        _, _, report = result.stdout.partition("missing or unsafe for production:")
        return {line[4:] for line in report.splitlines() if line.startswith("  - ")}
    marker = "refusing to start in production: "
    return {line[len(marker):] for line in result.stderr.splitlines() if line.startswith(marker)}


@pytest.mark.parametrize(("command", "settings", "problems"), PRODUCTION_RUNS)
async def test_production_refuses_unsafe_settings(cwd: Path, command: tuple[str, ...],
                                                  settings: dict[str, str],
                                                  problems: list[str]) -> None:
    # PORT=1: were the refusal missing, serve would fail to bind rather than serve.
    env = process_env(EPICURA_ENV="production", PORT="1", **settings)
    result = await run_cli(*command, cwd=cwd, env=env, limit_s=60)
    assert result.returncode == 2, result.output
    assert _listed_problems(result, command) == set(problems), result.output
    assert is_empty(cwd)  # nothing was started: no database file


# --- migrations ----------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    env: dict[str, str]
    sqlalchemy_url: str
    settings: dict[str, object]
    secret: str | None = None  # a password inside DATABASE_URL that output must never show


@pytest.fixture(params=["postgres", "sqlite"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "postgres":
        async with fresh_pg_database("epicura_test_cli_") as name:
            password = "pgpw-" + secrets.token_urlsafe(12)
            url = pg_url(name, password)
            settings = Settings(database_url=url, _env_file=None)
            yield Backend("postgres", {"DATABASE_URL": url}, settings.sqlalchemy_url,
                          {"database_url": url}, password)
    else:
        data_dir = tmp_path / "data"
        settings = Settings(data_dir=data_dir, _env_file=None)
        yield Backend("sqlite", {"DATA_DIR": str(data_dir)}, settings.sqlalchemy_url,
                      {"data_dir": data_dir})


async def _schema(url: str) -> tuple[set[str], list[str]]:
    """The tables of the database and the revisions recorded in alembic_version."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
            versions: list[str] = []
            if "alembic_version" in tables:
                rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
                versions = [row[0] for row in rows]
            return tables, versions
    finally:
        await engine.dispose()


async def test_db_upgrade_current_downgrade_and_upgrade_again(cwd: Path, backend: Backend) -> None:
    head = _head_revision()
    env = process_env(**backend.env)

    async def cli(*args: str) -> Result:
        result = await run_cli("db", *args, cwd=cwd, env=env)
        assert result.returncode == 0, (args, result.output)
        if backend.secret:
            assert backend.secret not in result.output
        return result

    await cli("upgrade")
    tables, versions = await _schema(backend.sqlalchemy_url)
    assert {"users", "login_sessions", "refresh_tokens", "jobs"} <= tables
    assert versions == [head]
    current = await cli("current")
    assert f"{head} (head)" in current.stdout

    await cli("downgrade", "base")
    tables, versions = await _schema(backend.sqlalchemy_url)
    assert tables <= {"alembic_version"} and versions == []
    current = await cli("current")
    assert "(head)" not in current.stdout and f"Rev: {head}" not in current.stdout

    await cli("upgrade")
    tables, versions = await _schema(backend.sqlalchemy_url)
    assert {"users", "login_sessions", "refresh_tokens", "jobs"} <= tables
    assert versions == [head]
    assert f"{head} (head)" in (await cli("current")).stdout
    if backend.name == "sqlite":
        assert (Path(str(backend.settings["data_dir"])) / "epicura.db").is_file()
        assert is_empty(cwd)  # DATA_DIR honoured: nothing written to the cwd


# --- admin create --------------------------------------------------------------------------


async def _user_row(url: str, email: str) -> dict[str, object] | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(
                text("SELECT role, password_hash, email_verified, is_active, display_name "
                     "FROM users WHERE email = :email"), {"email": email})).mappings().first()
            return dict(row) if row else None
    finally:
        await engine.dispose()


async def test_admin_create_makes_an_admin_who_can_log_in(
    cwd: Path, backend: Backend, tmp_path: Path, smtp: tuple[int, Mailbox]
) -> None:
    env = process_env(**backend.env)
    if backend.name == "postgres":  # only the embedded default migrates by itself
        assert (await run_cli("db", "upgrade", cwd=cwd, env=env)).returncode == 0
    address = f"test_cli.admin.{uuid.uuid4().hex[:8]}@example.com"
    typed = address.upper().replace("EXAMPLE", "Example")  # stored lower-cased
    result = await run_cli("admin", "create", "--email", typed, "--display-name", "Chef Admin",
                           "--password-stdin", cwd=cwd, env=env, stdin=STRONG_PASSWORD + "\n")
    assert result.returncode == 0, result.output
    assert STRONG_PASSWORD not in result.output

    row = await _user_row(backend.sqlalchemy_url, address)  # the e-mail is stored lower-cased
    assert row is not None
    assert row["role"] == "admin"
    assert str(row["password_hash"]).startswith(ARGON2ID_PREFIX)
    assert STRONG_PASSWORD not in str(row["password_hash"])
    assert row["email_verified"] and row["is_active"]
    assert row["display_name"] == "Chef Admin"

    prefix = f"epicura-test-cli-{uuid.uuid4().hex[:8]}:"
    extra: dict[str, object] = {"redis_url": REDIS_URL, "redis_prefix": prefix} \
        if backend.name == "postgres" else {}
    settings = base_settings(tmp_path, smtp[0], **backend.settings, **extra)
    try:
        async with running(settings, smtp[1]) as app:
            wrong = await app.login(address, "not the right password at all")
            assert wrong.status_code == 401
            login = await app.login(address)
            assert login.status_code == 200, login.text
            me = await app.client.get(f"{API}/users/me", headers=bearer(login.json()))
            assert me.status_code == 200
            assert me.json()["role"] == "admin" and me.json()["email"] == address
            admin_page = await app.client.get(f"{API}/admin/users",
                                              headers=bearer(login.json()))
            assert admin_page.status_code == 200, admin_page.text
    finally:
        if backend.name == "postgres":
            await delete_keys(prefix)


@pytest.mark.parametrize(("email", "password", "reason"), [
    pytest.param(None, "password1", "too common", id="common-password"),
    pytest.param(None, "Password1", "too common", id="common-password-any-case"),
    pytest.param(None, "x7#Qp", "at least 8 characters", id="short-password"),
    pytest.param(None, "", "at least 8 characters", id="empty-password"),
    pytest.param("not-an-email", STRONG_PASSWORD, "not a valid email", id="bad-email"),
])
async def test_admin_create_refuses_bad_input(cwd: Path, tmp_path: Path, email: str | None,
                                              password: str, reason: str) -> None:
    data_dir = tmp_path / "data"
    env = process_env(DATA_DIR=str(data_dir))
    address = email or f"test_cli.refused.{uuid.uuid4().hex[:8]}@example.com"
    result = await run_cli("admin", "create", "--email", address, "--password-stdin",
                           cwd=cwd, env=env, stdin=password + "\n")
    assert result.returncode != 0, result.output
    assert reason in result.stderr, result.output
    assert "is ready" not in result.output
    if password:
        assert password not in result.output
    if (data_dir / "epicura.db").exists():
        url = Settings(data_dir=data_dir, _env_file=None).sqlalchemy_url
        assert await _user_row(url, address.lower()) is None


# --- commands that refuse the embedded default ----------------------------------------------


async def test_bridge_needs_a_broker_and_a_database(cwd: Path) -> None:
    result = await run_cli("bridge", cwd=cwd, env=process_env())
    assert result.returncode != 0
    assert "MQTT_BROKER_URL is not set" in result.output
    no_db = await run_cli("bridge", cwd=cwd,
                          env=process_env(MQTT_BROKER_URL="mqtt://127.0.0.1:1"))
    assert no_db.returncode != 0 and "DATABASE_URL" in no_db.output
    assert is_empty(cwd)


async def test_worker_refuses_on_the_embedded_default(cwd: Path) -> None:
    result = await run_cli("worker", cwd=cwd, env=process_env(), limit_s=60)
    assert result.returncode != 0
    assert "embedded default runs jobs inside `epicura serve`" in result.stderr
    assert "DATABASE_URL" in result.stderr
    assert is_empty(cwd)
