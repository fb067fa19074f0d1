"""The storage layer: local files behind service-signed URLs, and S3 (a local moto server) behind
presigned URLs; the `/files` route's refusals (tampered, expired, traversal)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx2
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image

from epicura.kit import clock
from epicura.kit.storage import (
    InvalidKeyError,
    LocalStorage,
    ObjectMissingError,
    S3Storage,
    UrlSigner,
)
from tests.conftest import base_settings, free_port
from tests.recipes.test_recipe_flow import soup
from tests.support import API, Mailbox, Service, bearer, running

pytestmark = pytest.mark.anyio

SECRET = b"storage-test-secret-" + b"z" * 32
T0 = datetime(2031, 3, 4, 10, 5, 0, tzinfo=UTC)
BAD_KEYS = ["", "../secret", "a/../b", "/etc/passwd", "a//b", ".hidden", "a/.b", "a\\b", "a b",
            "a/./b", "x" * 600, "a\x00b"]


def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "files", UrlSigner(SECRET), "https://files.test/")


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def local_path(url: str) -> str:
    """What a client requests for a URL of the service (path and query, without the host)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


# --- local store ---------------------------------------------------------------------------------


async def test_local_put_get_delete(tmp_path: Path) -> None:
    storage = local(tmp_path)
    await storage.put("recipes/r1/a.bin", b"first")
    await storage.put("recipes/r1/a.bin", b"second")  # overwrite
    assert await storage.get("recipes/r1/a.bin") == b"second"
    assert (tmp_path / "files" / "recipes" / "r1" / "a.bin").read_bytes() == b"second"
    assert await storage.exists("recipes/r1/a.bin")
    await storage.delete(["recipes/r1/a.bin", "recipes/r1/never-written.bin"])
    assert not await storage.exists("recipes/r1/a.bin")
    with pytest.raises(ObjectMissingError):
        await storage.get("recipes/r1/a.bin")
    for key in BAD_KEYS:
        with pytest.raises(InvalidKeyError):
            await storage.put(key, b"x")
        with pytest.raises(InvalidKeyError):
            storage.url(key)
    assert not (tmp_path / "secret").exists()


async def test_local_urls_are_stable_within_a_window_and_expire(tmp_path: Path) -> None:
    storage = local(tmp_path)
    key = "recipes/images/abc/640.webp"
    with clock.frozen(T0):
        first = storage.url(key)
        assert first.startswith("https://files.test/files/recipes/images/abc/640.webp?exp=")
        exp = int(query_of(first)["exp"])
        assert timedelta(hours=1) <= datetime.fromtimestamp(exp, UTC) - T0 <= timedelta(hours=2)
        clock.advance(timedelta(minutes=50))  # 10:55, same window
        assert storage.url(key) == first
        assert LocalStorage(tmp_path / "files", UrlSigner(SECRET), "https://files.test").url(
            key) == first  # another instance with the same secret signs identically
        clock.advance(timedelta(minutes=10))  # 11:05, next window
        later = storage.url(key)
        assert later != first and int(query_of(later)["exp"]) == exp + 3600
        exact = storage.url(key, timedelta(minutes=5), stable=False)
        assert int(query_of(exact)["exp"]) == int(clock.utcnow().timestamp()) + 300

        signer, sig = storage.signer, query_of(first)["sig"]
        assert signer.verify(key, exp, sig)
        assert not signer.verify(key, exp + 1, sig)  # expiry tampered
        assert not signer.verify("recipes/images/abd/640.webp", exp, sig)  # other object
        assert not signer.verify(key, exp, sig[:-1] + ("A" if sig[-1] != "A" else "B"))
        assert not signer.verify(key, exp, "")
        assert not UrlSigner(b"another-secret-" + b"q" * 32).verify(key, exp, sig)
    assert not signer.verify(key, exp, sig, now_s=exp)  # at expiry it is dead
    assert signer.verify(key, exp, sig, now_s=exp - 1)


async def test_signed_file_route(embedded: Service, tmp_path: Path) -> None:
    storage = embedded.runtime.extras["storage"]
    assert isinstance(storage, LocalStorage)
    await storage.put("tests/hello.bin", b"hello, storage")
    url = storage.url("tests/hello.bin")
    assert url.startswith("https://app.epicura.test/files/tests/hello.bin?")

    served = await embedded.client.get(local_path(url))
    assert served.status_code == 200, served.text
    assert served.content == b"hello, storage"
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.headers["cache-control"].startswith("private, max-age=")

    params = query_of(url)
    sig, exp = params["sig"], int(params["exp"])
    tampered_sig = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    for path in (
        f"/files/tests/hello.bin?exp={exp}&sig={tampered_sig}",  # signature altered
        f"/files/tests/hello.bin?exp={exp + 3600}&sig={sig}",  # expiry pushed back
        f"/files/tests/other.bin?exp={exp}&sig={sig}",  # another object, same signature
    ):
        refused = await embedded.client.get(path)
        assert refused.status_code == 403, path
        assert refused.json()["code"] == "invalid_signature"
        assert b"hello" not in refused.content
    assert (await embedded.client.get("/files/tests/hello.bin")).status_code == 422  # unsigned

    with clock.frozen(datetime.fromtimestamp(exp, UTC)):
        expired = await embedded.client.get(local_path(url))
    assert expired.status_code == 403 and expired.json()["code"] == "invalid_signature"

    missing = storage.url("tests/never-written.bin")
    assert (await embedded.client.get(local_path(missing))).status_code == 404


async def test_traversal_is_refused_even_with_a_valid_signature(embedded: Service,
                                                                 tmp_path: Path) -> None:
    storage = embedded.runtime.extras["storage"]
    database = tmp_path / "epicura.db"
    assert database.read_bytes().startswith(b"SQLite format 3")  # the target exists
    exp = int(clock.utcnow().timestamp()) + 3600
    for key, path in (
        ("../epicura.db", "/files/%2E%2E/epicura.db"),
        ("../epicura.db", "/files/..%2Fepicura.db"),
        ("recipes/../../epicura.db", "/files/recipes/%2E%2E/%2E%2E/epicura.db"),
        (str(database), f"/files/{database}"),  # an absolute path
    ):
        for signature in (storage.signer.sign(key, exp), "forged"):
            reply = await embedded.client.get(f"{path}?exp={exp}&sig={signature}")
            # A forged link fails on its signature; a signed one on the key's shape.
            assert reply.status_code == (403 if signature == "forged" else 404), path
            assert b"SQLite" not in reply.content


# --- S3 (moto) -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture
def bucket(moto_endpoint: str, aws_env: None) -> str:
    name = f"epicura-test-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=name)
    return name


async def test_s3_put_get_delete_and_presigned_url(moto_endpoint: str, bucket: str) -> None:
    storage = S3Storage(bucket, moto_endpoint)
    key = "recipes/images/xyz/320.webp"
    await storage.put(key, b"RIFF-not-really-webp", content_type="image/webp")
    assert await storage.get(key) == b"RIFF-not-really-webp"

    url = storage.url(key)
    assert url.startswith(f"{moto_endpoint}/{bucket}/{key}?")
    params = query_of(url)
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and params["X-Amz-Signature"]
    assert 3600 <= int(params["X-Amz-Expires"]) <= 7200
    assert storage.url(key) == url  # stable within the window (cached signature)

    async with httpx2.AsyncClient() as http:
        fetched = await http.get(url)
        assert fetched.status_code == 200
        assert fetched.content == b"RIFF-not-really-webp"
        assert fetched.headers["content-type"] == "image/webp"
        await storage.delete([key, "recipes/images/xyz/never.webp"])
        assert (await http.get(url)).status_code == 404
    with pytest.raises(ObjectMissingError):
        await storage.get(key)


async def test_s3_readiness(moto_endpoint: str, bucket: str, tmp_path: Path,
                            smtp: tuple[int, Mailbox]) -> None:
    settings = base_settings(tmp_path, smtp[0], s3_bucket=bucket, s3_endpoint=moto_endpoint)
    async with running(settings, smtp[1]) as svc:
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["storage"] == "ok"
    missing = base_settings(tmp_path / "other", smtp[0], s3_bucket=f"{bucket}-missing",
                            s3_endpoint=moto_endpoint)
    async with running(missing, smtp[1]) as svc:
        down = await svc.client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["checks"]["storage"].startswith("down")


async def test_s3_image_upload_end_to_end(moto_endpoint: str, bucket: str, tmp_path: Path,
                                          smtp: tuple[int, Mailbox]) -> None:
    """The embedded database with S3 files: an upload lands in the bucket, its URLs are
    presigned S3 URLs that fetch the renditions, and `/files` is not used."""
    settings = base_settings(tmp_path, smtp[0], s3_bucket=bucket, s3_endpoint=moto_endpoint)
    async with running(settings, smtp[1]) as svc:
        owner = bearer(await svc.signed_up("test_storage-s3@example.com"))
        recipe = (await svc.client.post(f"{API}/recipes", json=soup(), headers=owner)).json()
        picture = io.BytesIO()
        Image.new("RGB", (900, 600), "orange").save(picture, "PNG")
        uploaded = await svc.client.post(
            f"{API}/recipes/{recipe['id']}/images", headers=owner,
            files={"file": ("soup.png", picture.getvalue(), "image/png")})
        assert uploaded.status_code == 201, uploaded.text
        body = uploaded.json()
        assert (body["width"], body["height"]) == (900, 600)
        async with httpx2.AsyncClient() as http:
            for nominal, expected in (("320", (320, 213)), ("640", (640, 427)),
                                      ("1280", (900, 600))):
                url = body["renditions"][nominal]
                assert url.startswith(f"{moto_endpoint}/{bucket}/recipes/images/{body['id']}/")
                fetched = await http.get(url)
                assert fetched.status_code == 200
                with Image.open(io.BytesIO(fetched.content)) as image:
                    assert (image.format, image.size) == ("WEBP", expected)
        assert not (tmp_path / "files").exists()
        signed_local = await svc.client.get(f"/files/recipes/images/{body['id']}/320.webp"
                                            "?exp=99999999999&sig=x")
        assert signed_local.status_code == 404
