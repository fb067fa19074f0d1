"""`epicura firmware keygen|manifest|sign` and `epicura keys release …` as real subprocesses,
then the files they made uploaded to the embedded default (SQLite, local files), offered to an
appliance and reported on: the whole path on the laptop setup."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from epicura.appliances.access import issue_device_token
from epicura.auth import service as auth_service
from epicura.ota import release_signing as rs
from tests.conftest import base_settings
from tests.e2e import process_env, run_cli
from tests.ota.conftest import appliance_row
from tests.support import API, STRONG_PASSWORD, Mailbox, bearer, running, startup_tasks_done

pytestmark = pytest.mark.anyio


async def test_sign_register_upload_and_offer_on_the_embedded_default(
        tmp_path: Path, smtp: tuple[int, Mailbox]) -> None:
    cwd, data = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    env = process_env(DATA_DIR=str(data))
    made = await run_cli("firmware", "keygen", "--out", "release.pem", cwd=cwd, env=env)
    assert made.returncode == 0, made.output
    lines = dict(line.split(" ", 1) for line in made.stdout.splitlines())
    assert stat.S_IMODE((cwd / "release.pem").stat().st_mode) == 0o600
    assert (await run_cli("firmware", "keygen", "--out", "release.pem", cwd=cwd,
                          env=env)).returncode != 0  # never overwrites a key
    (cwd / "fw.bin").write_bytes(b"\x7fELF firmware" * 5000)
    manifest = await run_cli("firmware", "manifest", "fw.bin", "--version", "1.5.0",
                             "--channel", "stable", "--hw-revision", "rev-a", "--min-from",
                             "1.0.0", "--notes", "CLI build", "--key", "release.pem",
                             "--out", "manifest.json", cwd=cwd, env=env)
    assert manifest.returncode == 0, manifest.output
    doc = json.loads((cwd / "manifest.json").read_bytes())
    assert doc["key_id"] == lines["key_id"] and doc["size"] == 13 * 5000
    signed = await run_cli("firmware", "sign", "--key", "release.pem", "manifest.json",
                           "--out", "manifest.json.sig", cwd=cwd, env=env)
    assert signed.returncode == 0, signed.output
    signature = (cwd / "manifest.json.sig").read_text().strip()
    assert rs.verify(lines["public_key"], (cwd / "manifest.json").read_bytes(), signature)
    bad = await run_cli("firmware", "manifest", "fw.bin", "--version", "v1", "--channel",
                        "stable", "--hw-revision", "rev-a", "--key", "release.pem", cwd=cwd,
                        env=env)
    assert bad.returncode != 0 and "semantic version" in bad.output

    (cwd / "release.pub").write_text(lines["public_key"] + "\n")
    added = await run_cli("keys", "release", "add", "release.pub", "--name", "ci", cwd=cwd,
                          env=env)
    assert added.returncode == 0, added.output
    assert added.stdout.startswith(f"{lines['key_id']}  active")
    exported = await run_cli("keys", "release", "export", cwd=cwd, env=env)
    assert json.loads(exported.stdout) == {"keys": [{"key_id": lines["key_id"],
                                                     "public_key": lines["public_key"],
                                                     "status": "active"}]}

    settings = base_settings(data, smtp[0], rate_limit_enabled=False)
    async with running(settings, smtp[1]) as svc:
        await startup_tasks_done(svc)
        async with svc.runtime.db.transaction() as session:
            await auth_service.create_admin(svc.runtime, session, "ota-cli@example.com",
                                            STRONG_PASSWORD, "Admin")
            device = appliance_row()
            session.add(device)
        admin = bearer((await svc.login("ota-cli@example.com")).json())
        files = {name: (name, (cwd / path).read_bytes())
                 for name, path in (("manifest", "manifest.json"),
                                    ("signature", "manifest.json.sig"), ("binary", "fw.bin"))}
        uploaded = await svc.client.post(f"{API}/admin/firmware", files=files, headers=admin)
        assert uploaded.status_code == 201, uploaded.text
        rollout = await svc.client.post(f"{API}/admin/rollouts", headers=admin, json={
            "release_id": uploaded.json()["id"], "filter": {"channel": "stable",
                                                             "hw_revisions": ["rev-a"]},
            "stages": [{"percent": 100, "soak_s": 0, "success_threshold": 1,
                        "failure_threshold": 0.5}]})
        assert rollout.status_code == 201, rollout.text
        rollout_id = rollout.json()["id"]
        assert (await svc.client.post(f"{API}/admin/rollouts/{rollout_id}/start",
                                      headers=admin)).status_code == 200
        token, _ttl = issue_device_token(svc.runtime, device)
        offer = await svc.client.get(f"{API}/device/firmware/check", headers=bearer(token),
                                     params={"current": "1.4.2"})
        assert offer.status_code == 200, offer.text
        assert base64.b64decode(offer.json()["manifest"]) == (cwd / "manifest.json").read_bytes()
        binary = await svc.client.get(offer.json()["url"].removeprefix(settings.public_base_url))
        assert binary.content == (cwd / "fw.bin").read_bytes()
        done = await svc.client.post(f"{API}/device/firmware/status", headers=bearer(token),
                                     json={"rollout_id": rollout_id, "status": "succeeded"})
        assert done.status_code == 204, done.text
        detail = await svc.client.get(f"{API}/admin/rollouts/{rollout_id}", headers=admin)
        assert detail.json()["stages"][0]["counts"]["succeeded"] == 1

    retired = await run_cli("keys", "release", "retire", lines["key_id"], cwd=cwd, env=env)
    assert retired.returncode == 0 and "retired" in retired.stdout
    again = await run_cli("keys", "release", "add", "release.pub", cwd=cwd, env=env)
    assert again.returncode != 0 and "retired" in again.output
