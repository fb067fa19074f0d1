"""Releases on S3 (a local moto server): a multi-part streamed upload lands in the bucket, the
offer's URL is a presigned GET of that one object valid at most an hour, and a refused upload
leaves nothing in the bucket."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx2
import pytest

from epicura.appliances.access import issue_device_token
from epicura.auth import service as auth_service
from epicura.ota import keys
from epicura.ota import release_signing as rs
from tests.conftest import base_settings
from tests.kit.test_storage import aws_env, bucket, moto_endpoint  # noqa: F401
from tests.ota.conftest import Signed, appliance_row, signed
from tests.support import API, STRONG_PASSWORD, Mailbox, bearer, running

pytestmark = pytest.mark.anyio


def objects(endpoint: str, name: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    return [item["Key"] for item in client.list_objects_v2(Bucket=name).get("Contents", [])
            if item["Key"].startswith("firmware/")]


async def test_a_release_streams_into_the_bucket_and_is_offered_by_a_presigned_url(
        moto_endpoint: str, bucket: str, tmp_path: Path,  # noqa: F811
        smtp: tuple[int, Mailbox]) -> None:
    settings = base_settings(tmp_path, smtp[0], s3_bucket=bucket, s3_endpoint=moto_endpoint,
                             rate_limit_enabled=False)
    key = rs.generate_key()
    binary = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() * 1024
                      for i in range(700))  # 22 MiB: three 8 MiB parts
    async with running(settings, smtp[1]) as svc:
        device = appliance_row()
        async with svc.runtime.db.transaction() as session:
            await keys.add(session, rs.public_key_b64(key))
            await auth_service.create_admin(svc.runtime, session, "ota-s3@example.com",
                                            STRONG_PASSWORD, "Admin")
            session.add(device)
        admin = bearer((await svc.login("ota-s3@example.com")).json())

        good = signed(key, "1.5.0", binary=binary)
        tampered = Signed(good.manifest, good.signature, binary[:-1] + b"\x00")
        refused = await svc.client.post(f"{API}/admin/firmware", files=tampered.parts(),
                                        headers=admin)
        assert refused.status_code == 422 and refused.json()["code"] == "hash_mismatch"
        assert objects(moto_endpoint, bucket) == []

        uploaded = await svc.client.post(f"{API}/admin/firmware", files=good.parts(),
                                         headers=admin)
        assert uploaded.status_code == 201, uploaded.text
        release_id = uploaded.json()["id"]
        assert objects(moto_endpoint, bucket) == [f"firmware/{release_id}/firmware.bin"]
        rollout = (await svc.client.post(f"{API}/admin/rollouts", headers=admin, json={
            "release_id": release_id, "filter": {"channel": "stable", "hw_revisions": ["rev-a"]},
            "stages": [{"percent": 100, "soak_s": 0, "success_threshold": 1,
                        "failure_threshold": 1}]})).json()
        await svc.client.post(f"{API}/admin/rollouts/{rollout['id']}/start", headers=admin)
        offer = await svc.client.get(
            f"{API}/device/firmware/check", params={"current": "1.4.2"},
            headers=bearer(issue_device_token(svc.runtime, device)[0]))
        assert offer.status_code == 200, offer.text
        url = offer.json()["url"]
        query = parse_qs(urlsplit(url).query)
        assert url.startswith(f"{moto_endpoint}/{bucket}/firmware/{release_id}/firmware.bin?")
        assert 0 < int(query["X-Amz-Expires"][0]) <= 3600
        assert query["X-Amz-SignedHeaders"] == ["host"]
        async with httpx2.AsyncClient() as http:
            fetched = await http.get(url)
        assert fetched.status_code == 200
        assert hashlib.sha256(fetched.content).hexdigest() == offer.json()["sha256"]
        assert len(fetched.content) == len(binary)
