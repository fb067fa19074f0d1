"""Issue 7's "Done when", as processes: `epicura serve`, `epicura worker` and `epicura bridge` on a
fresh PostgreSQL database, a Redis prefix and a private Mosquitto with dynamic security, and
`epicura simulate` appliances. An admin trusts a release key (`epicura keys release add`),
uploads a signed release and starts a 3-stage rollout; the first stage installs and the rollout
advances by itself after its soak; the simulator is restarted failing that version's installs and
the rollout halts by itself; a fixed release is uploaded, the broken one yanked (which aborts its
halted rollout) and the fix rolls out over the whole fleet and completes.

Everything is watched through the admin API, polled with deadlines. 100 appliances, as in the
README's "Run a rollout on this machine" (about 75 s on two cores; `E2E_OTA_APPLIANCES=N` runs
another number, at least 30 so that the first stage of 10 % is unlikely to be empty). The rollout
is evaluated every second here (`OTA_EVALUATE_EVERY_S=1`); its first stage soaks 15 s, the second
10 minutes (it halts long before)."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx2
import pytest

from epicura.ota import release_signing as rs
from tests.brokers import PrivateBroker, private_broker
from tests.conftest import REDIS_URL, RUN_ID, delete_keys, free_port
from tests.e2e import (
    Running,
    fresh_pg_database,
    pg_url,
    process_env,
    run_cli,
    started,
    wait_healthy,
)
from tests.ota.conftest import signed
from tests.support import API, STRONG_PASSWORD, bearer

pytestmark = pytest.mark.anyio

APPLIANCES = int(os.environ.get("E2E_OTA_APPLIANCES", "100"))
ADMIN = "rollout-admin@example.com"
BROKEN, FIXED = "1.5.0", "1.5.1"
DEADLINE_S = 90.0
THRESHOLDS = {"success_threshold": 0.9, "failure_threshold": 0.2}
# Stage 2 also halts past 10 failures, whatever the share: should a slow machine let the healthy
# simulator install some of stage 2 before it stops, the failing one still halts the rollout.
MAX_FAILED = 10
# Stage 1 soaks long enough for the test to pause the rollout before it can advance.
STAGES = [{"percent": 10, "soak_s": 45, **THRESHOLDS},
          {"percent": 50, "soak_s": 600, **THRESHOLDS, "failure_max_devices": MAX_FAILED},
          {"percent": 100, "soak_s": 0, **THRESHOLDS}]
QUICK_STAGES = [{"percent": 10, "soak_s": 2, **THRESHOLDS},
                {"percent": 50, "soak_s": 2, **THRESHOLDS},
                {"percent": 100, "soak_s": 0, **THRESHOLDS}]


def _counts(detail: dict[str, Any], *stages: int) -> dict[str, int]:
    total: dict[str, int] = {}
    for stage in detail["stages"]:
        if not stages or stage["index"] in stages:
            for status, n in stage["counts"].items():
                if n:
                    total[status] = total.get(status, 0) + n
    return total


class Admin:
    """The admin's side: the API over HTTP, waits that poll it with a deadline."""

    def __init__(self, client: httpx2.AsyncClient, processes: list[Running]) -> None:
        self.client, self.processes = client, processes
        self.headers: dict[str, str] = {}

    async def login(self) -> None:
        reply = await self.client.post(f"{API}/auth/login", json={
            "email": ADMIN, "password": STRONG_PASSWORD, "session_name": "e2e rollout"})
        assert reply.status_code == 200, reply.text
        self.headers = bearer(reply.json())

    async def call(self, method: str, path: str, expect: int = 200,
                   **kwargs: Any) -> dict[str, Any]:
        reply = await self.client.request(method, f"{API}{path}", headers=self.headers,
                                          **kwargs)
        assert reply.status_code == expect, reply.text
        body: dict[str, Any] = reply.json()
        return body

    async def rollout(self, rollout_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/admin/rollouts/{rollout_id}")

    async def until(self, rollout_id: str, what: str,
                    holds: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The rollout once `holds(detail)`, polling the API (each answer is awaited; the
        processes keep running meanwhile) until DEADLINE_S."""
        detail: dict[str, Any] = {}
        try:
            with anyio.fail_after(DEADLINE_S):
                while not holds(detail := await self.rollout(rollout_id)):
                    await self._between_polls()
        except TimeoutError:
            raise AssertionError(f"no {what} within {DEADLINE_S} s: {detail}\n"
                                 + self.diagnostics()) from None
        return detail

    async def _between_polls(self) -> None:
        # Let the processes print (a line means something happened); at most half a second.
        with anyio.move_on_after(0.5):
            seen = [len(p.output.lines) for p in self.processes]
            async with anyio.create_task_group() as tasks:
                for process, count in zip(self.processes, seen, strict=True):
                    tasks.start_soon(process.output.changed_since, count)

    def diagnostics(self) -> str:
        return "\n".join(f"--- process {i}\n" + "\n".join(p.output.lines[-40:])
                         for i, p in enumerate(self.processes))

    async def upload(self, key: Any, version: str) -> str:
        reply = await self.call("POST", "/admin/firmware", 201,
                                files=signed(key, version).parts())
        assert reply["status"] == "ready"
        return str(reply["id"])

    async def start_rollout(self, release_id: str, stages: list[dict[str, Any]]) -> str:
        created = await self.call("POST", "/admin/rollouts", 201, json={
            "release_id": release_id, "stages": stages,
            "filter": {"channel": "stable", "hw_revisions": ["rev-a"], "tags": []}})
        started_ = await self.call("POST", f"/admin/rollouts/{created['id']}/start")
        assert started_["state"] == "active" and started_["current_stage"] == 0
        return str(created["id"])


@pytest.fixture
def redis_prefix() -> str:
    return f"epicura-test-{RUN_ID}-rollout-{uuid.uuid4().hex[:8]}:"


@asynccontextmanager
async def simulator(cwd: Path, env: dict[str, str], api: str, *failing: str,
                    ) -> AsyncIterator[Running]:
    """`epicura simulate` of APPLIANCES appliances (the same ones each time: its state file),
    yielded once they are ready; stopped with SIGTERM (it prints its totals) at the end.
    `failing`: versions whose installs fail."""
    options = [option for version in failing
               for option in ("--ota-failing-version", version)]
    async with started(
            "simulate", "--appliances", str(APPLIANCES), "--api", api,
            "--serial-prefix", f"E2EOTA{RUN_ID[:6].upper()}-", "--speed", "30",
            "--session-every", "100000000", "--alert-every", "100000000",
            "--release-keys", "release-keys.json", "--ota-install", "30",
            "--admin-email", ADMIN, "--admin-password", STRONG_PASSWORD,
            *(["--ota-failure-rate", "1", *options] if failing else []),
            cwd=cwd, env=env) as sim:
        await sim.output.wait_for("appliances ready", limit_s=DEADLINE_S)
        try:
            yield sim
        finally:
            if sim.process.returncode is None:
                sim.process.send_signal(signal.SIGTERM)
                await sim.exit_code(limit_s=30)


async def test_a_3_stage_rollout_advances_halts_on_failing_installs_and_a_fix_completes(
        tmp_path: Path, redis_prefix: str) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    key = rs.generate_key()
    (cwd / "release-key.pub").write_text(rs.public_key_b64(key) + "\n")
    async with AsyncExitStack() as stack:
        broker: PrivateBroker = stack.enter_context(private_broker(tmp_path / "broker"))
        name = await stack.enter_async_context(fresh_pg_database("epicura_test_e2e_ota_"))
        stack.push_async_callback(delete_keys, redis_prefix)
        env = process_env(
            DATABASE_URL=pg_url(name), REDIS_URL=REDIS_URL, REDIS_PREFIX=redis_prefix,
            MQTT_BROKER_URL=broker.url, PUBLIC_BASE_URL=api, PORT=str(port),
            OTA_EVALUATE_EVERY_S="1", RATE_LIMIT_ENABLED="false")

        # The operator: schema, an admin account, the build system's release key trusted.
        for args, stdin in ((("db", "upgrade"), None),
                            (("admin", "create", "--email", ADMIN, "--display-name", "Admin",
                              "--password-stdin"), STRONG_PASSWORD + "\n"),
                            (("keys", "release", "add", "release-key.pub"), None)):
            ran = await run_cli(*args, cwd=cwd, env=env, stdin=stdin)
            assert ran.returncode == 0, ran.output
        exported = await run_cli("keys", "release", "export", cwd=cwd, env=env)
        assert exported.returncode == 0 and rs.key_id(key) in exported.stdout, exported.output
        (cwd / "release-keys.json").write_text(exported.stdout)

        server = await stack.enter_async_context(
            started("serve", "--host", "127.0.0.1", "--port", str(port), cwd=cwd, env=env))
        server.port = port
        worker = await stack.enter_async_context(started("worker", cwd=cwd, env=env))
        bridge = await stack.enter_async_context(started("bridge", cwd=cwd, env=env))
        await wait_healthy(server)
        client = await stack.enter_async_context(httpx2.AsyncClient(base_url=api, timeout=30))
        admin = Admin(client, [server, worker, bridge])
        await admin.login()
        broken_id = await admin.upload(key, BROKEN)

        # 1. The fleet comes up; the rollout starts; stage 1 installs. The rollout is paused
        # while the healthy simulator leaves, so that no stage-2 appliance can install 1.5.0
        # before the failing simulator is up (on a busy machine the soak could otherwise end
        # first and stage 2 install healthily).
        async with simulator(cwd, env, api) as healthy:
            admin.processes.append(healthy)
            rollout_id = await admin.start_rollout(broken_id, STAGES)
            first = await admin.until(rollout_id, "first stage installed", lambda d: bool(
                d["stages"][0]["devices"] and _counts(d, 0) == {
                    "succeeded": d["stages"][0]["devices"]}))
            paused = await admin.call("POST", f"/admin/rollouts/{rollout_id}/pause")
            assert (paused["state"], paused["current_stage"]) == ("paused", 0), paused
        admin.processes.remove(healthy)
        stage_1 = first["stages"][0]["devices"]

        # 2. The simulator comes back failing installs of 1.5.0; resumed, the rollout advances by
        # itself once stage 1 has soaked, then halts by itself.
        async with simulator(cwd, env, api, BROKEN) as failing:
            admin.processes.append(failing)
            await admin.call("POST", f"/admin/rollouts/{rollout_id}/resume")
            advanced = await admin.until(rollout_id, "advance to stage 2",
                                         lambda d: d["current_stage"] == 1)
            assert advanced["stages"][0]["status"] == "passed", advanced
            halted = await admin.until(rollout_id, "halt", lambda d: d["state"] == "halted")
            assert halted["current_stage"] == 1, halted
            assert "failure threshold" in halted["halt_reason"] or (
                "failures allowed" in halted["halt_reason"]), halted
            counts = _counts(halted)
            assert counts.get("failed", 0) > min(
                MAX_FAILED, 0.2 * (stage_1 + halted["stages"][1]["devices"])), halted
            assert counts["succeeded"] >= stage_1
            assert halted["stages"][2]["status"] == "waiting"  # the last stage never opened

            # 3. A fixed release; the broken one yanked (its halted rollout is aborted); the fix
            # rolls out over the whole fleet, 1.5.0 devices included, and completes.
            fixed_id = await admin.upload(key, FIXED)
            yanked = await admin.call("PATCH", f"/admin/firmware/{broken_id}",
                                      json={"status": "yanked"})
            assert yanked["status"] == "yanked"
            assert (await admin.rollout(rollout_id))["state"] == "aborted"
            fixed = await admin.start_rollout(fixed_id, QUICK_STAGES)
            done = await admin.until(fixed, "the fix on every appliance", lambda d: (
                d["state"] == "completed" and _counts(d) == {"succeeded": APPLIANCES}))
            assert [stage["status"] for stage in done["stages"]] == ["passed"] * 3
        totals = failing.output.text
        assert f"{APPLIANCES} updates installed" in totals, totals

        # The audit trail tells the story: the admin started and paused and resumed it, the
        # system advanced and halted it, the admin's yank aborted it.
        conn = await asyncpg.connect(pg_url(name))
        try:
            trail = [(r["action"], r["actor_type"]) for r in await conn.fetch(
                "SELECT action, actor_type FROM audit_events WHERE target_id = $1 ORDER BY at",
                rollout_id)]
        finally:
            await conn.close()
        assert trail == [("rollout.created", "admin"), ("rollout.start", "admin"),
                         ("rollout.pause", "admin"), ("rollout.resume", "admin"),
                         ("rollout.advanced", "system"), ("rollout.halted", "system"),
                         ("rollout.abort", "admin")], trail
