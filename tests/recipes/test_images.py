"""Recipe images: content-checked uploads, clean WebP renditions behind signed URLs, refusals of
anything that is not a usable image, ownership, deletion."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import ExifTags, Image, PngImagePlugin
from sqlalchemy import func, select, update

from epicura.auth.models import ROLE_ADMIN, User
from epicura.recipes.models import RecipeImage
from tests.conftest import base_settings
from tests.recipes.test_recipe_flow import soup
from tests.support import API, Mailbox, Service, bearer, running

pytestmark = pytest.mark.anyio

CAMERA = "EpicuraTestCam-7731"


# --- images made by the tests --------------------------------------------------------------------


def encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def phone_photo(width: int = 1600, height: int = 1000) -> bytes:
    """A JPEG as a phone writes it: stored sideways (left half red, right half blue) with
    EXIF orientation 6 (rotate 90° clockwise to display), the camera model and a GPS position."""
    image = Image.new("RGB", (width, height), (220, 0, 0))
    image.paste((0, 0, 220), (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = CAMERA
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (48.0, 51.0, 24.0),
        ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (2.0, 21.0, 3.0),
    }
    data = encoded(image, "JPEG", exif=exif, quality=92)
    with Image.open(io.BytesIO(data)) as check:  # the input really carries what must go
        assert check.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        assert check.getexif()[ExifTags.Base.Orientation] == 6
    assert CAMERA.encode() in data
    return data


def png_chunk(tag: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + tag + payload
            + struct.pack(">I", zlib.crc32(tag + payload) & 0xFFFFFFFF))


def png_of_zeros(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of `width` × `height` whose pixel data compresses to almost nothing:
    a decompression bomb when the size is large."""
    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data)
            + png_chunk(b"IEND", b""))


def fetch_path(url: str) -> str:
    parts = urlsplit(url)
    assert parts.path.startswith("/files/"), url
    return f"{parts.path}?{parts.query}"


async def fetch_image(svc: Service, url: str) -> Image.Image:
    reply = await svc.client.get(fetch_path(url))
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "image/webp"
    image = Image.open(io.BytesIO(reply.content))
    image.load()
    return image


async def new_recipe(svc: Service, owner: dict[str, str], **extra: Any) -> dict[str, Any]:
    created = await svc.client.post(f"{API}/recipes", json={**soup(), **extra}, headers=owner)
    assert created.status_code == 201, created.text
    recipe: dict[str, Any] = created.json()
    recipe["etag"] = created.headers["etag"]
    return recipe


async def upload(svc: Service, recipe_id: str, data: bytes, headers: dict[str, str],
                 name: str = "photo.jpg", content_type: str = "image/jpeg") -> Any:
    return await svc.client.post(f"{API}/recipes/{recipe_id}/images", headers=headers,
                                 files={"file": (name, data, content_type)})


async def image_rows(svc: Service) -> list[RecipeImage]:
    async with svc.runtime.db.sessions() as session:
        return list((await session.scalars(select(RecipeImage))).all())


def stored_files(data_dir: Path) -> list[Path]:
    root = data_dir / "files" / "recipes"
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


# --- uploads -------------------------------------------------------------------------------------


async def test_phone_photo_becomes_clean_upright_webp_renditions(embedded: Service,
                                                                  tmp_path: Path) -> None:
    owner = bearer(await embedded.signed_up("test_images-photo@example.com"))
    recipe = await new_recipe(embedded, owner)
    reply = await upload(embedded, recipe["id"], phone_photo(), owner)
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert set(body) == {"id", "url", "width", "height", "renditions"}
    assert (body["width"], body["height"]) == (1000, 1600)  # upright, 1280 wide is not reached
    assert set(body["renditions"]) == {"320", "640", "1280"}
    assert body["url"] == body["renditions"]["1280"]

    expected = {"320": (320, 512), "640": (640, 1024), "1280": (1000, 1600)}
    for nominal, size in expected.items():
        image = await fetch_image(embedded, body["renditions"][nominal])
        assert (image.format, image.size) == ("WEBP", size)
        assert not image.getexif() and "exif" not in image.info and "xmp" not in image.info
        assert "icc_profile" not in image.info
        top = image.getpixel((size[0] // 2, size[1] // 5))
        bottom = image.getpixel((size[0] // 2, size[1] * 4 // 5))
        assert isinstance(top, tuple) and isinstance(bottom, tuple)
        assert top[0] > 150 and top[2] < 80, top  # the left (red) half is now on top
        assert bottom[2] > 150 and bottom[0] < 80, bottom
    for path in stored_files(tmp_path):
        content = path.read_bytes()
        assert CAMERA.encode() not in content and b"Exif" not in content

    [row] = await image_rows(embedded)
    assert str(row.id) == body["id"] and str(row.recipe_id) == recipe["id"]
    assert (row.width, row.height, row.deleted_at) == (1000, 1600, None)


async def test_small_png_is_never_upscaled_and_keeps_transparency(embedded: Service) -> None:
    owner = bearer(await embedded.signed_up("test_images-small@example.com"))
    recipe = await new_recipe(embedded, owner)
    image = Image.new("RGBA", (200, 150), (0, 160, 0, 255))
    image.paste((0, 0, 0, 0), (0, 0, 100, 150))  # left half transparent
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", CAMERA)
    reply = await upload(embedded, recipe["id"], encoded(image, "PNG", pnginfo=text), owner,
                         name="herbs.png", content_type="image/png")
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["width"], body["height"]) == (200, 150)
    for url in body["renditions"].values():
        got = await fetch_image(embedded, url)
        assert got.size == (200, 150) and got.mode == "RGBA"
        transparent, opaque = got.getpixel((20, 75)), got.getpixel((180, 75))
        assert isinstance(transparent, tuple) and isinstance(opaque, tuple)
        assert transparent[3] == 0 and opaque[3] == 255
        assert "Comment" not in got.info


async def test_cover_image_url_in_lists(embedded: Service) -> None:
    owner = bearer(await embedded.signed_up("test_images-cover@example.com"))
    recipe = await new_recipe(embedded, owner)
    picture = encoded(Image.new("RGB", (2000, 1000), "yellow"), "WEBP")
    uploaded = await upload(embedded, recipe["id"], picture, owner, name="x.webp",
                            content_type="image/webp")
    assert uploaded.status_code == 201, uploaded.text
    image_id = uploaded.json()["id"]
    edited = await embedded.client.put(
        f"{API}/recipes/{recipe['id']}", json={**soup(), "images": [image_id]},
        headers={**owner, "If-Match": recipe["etag"]})
    assert edited.status_code == 200, edited.text
    assert edited.json()["content"]["images"] == [image_id]

    listed = await embedded.client.get(f"{API}/recipes?mine=true", headers=owner)
    [item] = [item for item in listed.json()["items"] if item["id"] == recipe["id"]]
    assert item["image_url"] is not None and f"/{image_id}/640.webp?" in item["image_url"]
    again = await embedded.client.get(f"{API}/recipes?mine=true", headers=owner)
    [same] = [i for i in again.json()["items"] if i["id"] == recipe["id"]]
    assert same["image_url"] == item["image_url"]  # stable URLs: the page can be cached
    cover = await fetch_image(embedded, item["image_url"])
    assert cover.size == (640, 320)


# --- refusals ------------------------------------------------------------------------------------


async def test_files_that_are_not_usable_images_are_refused(embedded: Service,
                                                           tmp_path: Path) -> None:
    owner = bearer(await embedded.signed_up("test_images-bad@example.com"))
    recipe = await new_recipe(embedded, owner)
    noise = Image.effect_noise((400, 300), 60).convert("RGB")
    full_png = encoded(noise, "PNG")
    cases: dict[str, tuple[bytes, str, str]] = {
        "pdf renamed .jpg": (b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n",
                             "photo.jpg", "image/jpeg"),
        "truncated png": (full_png[: len(full_png) // 2], "cut.png", "image/png"),
        "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                b'<script>alert(1)</script></svg>', "logo.svg", "image/svg+xml"),
        "gif (not accepted)": (encoded(Image.new("P", (20, 20)), "GIF"), "a.gif", "image/gif"),
        "empty file": (b"", "empty.jpg", "image/jpeg"),
        "html": (b"<html><body>hi</body></html>", "page.png", "image/png"),
        "48 MP (over the 40 MP cap)": (png_of_zeros(8000, 6000), "big.png", "image/png"),
        "100 MP bomb (Pillow warns)": (png_of_zeros(10_000, 10_000), "bomb1.png", "image/png"),
        "900 MP bomb (Pillow refuses)": (png_of_zeros(30_000, 30_000), "bomb2.png",
                                         "image/png"),
    }
    assert len(cases["900 MP bomb (Pillow refuses)"][0]) < 1024 * 1024  # small file, huge image
    for name, (data, filename, content_type) in cases.items():
        reply = await upload(embedded, recipe["id"], data, owner, filename, content_type)
        assert reply.status_code == 422, (name, reply.status_code, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["code"] == "invalid_image", name

    wrong_part = await embedded.client.post(
        f"{API}/recipes/{recipe['id']}/images", headers=owner,
        files={"photo": ("a.png", full_png, "image/png")})
    assert wrong_part.status_code == 422 and wrong_part.json()["code"] == "validation_failed"
    as_json = await embedded.client.post(f"{API}/recipes/{recipe['id']}/images", headers=owner,
                                         json={"file": "aGVsbG8="})
    assert as_json.status_code == 415

    assert await image_rows(embedded) == []  # nothing half-written
    assert stored_files(tmp_path) == []
    fine = await upload(embedded, recipe["id"], full_png, owner, "ok.png", "image/png")
    assert fine.status_code == 201  # the same recipe still takes a real image


async def test_uploads_over_10_mib_are_refused(embedded: Service, tmp_path: Path,
                                               smtp: tuple[int, Mailbox]) -> None:
    owner = bearer(await embedded.signed_up("test_images-huge@example.com"))
    recipe = await new_recipe(embedded, owner)
    eleven_mib = os.urandom(11 * 1024 * 1024)
    refused = await upload(embedded, recipe["id"], eleven_mib, owner)
    assert refused.status_code == 413 and refused.json()["code"] == "body_too_large"

    # With a roomier edge limit the upload reaches the handler, whose own cap refuses it.
    roomy = base_settings(tmp_path / "roomy", smtp[0], max_upload_body_bytes=64 * 1024 * 1024)
    async with running(roomy, smtp[1]) as svc:
        other = bearer(await svc.signed_up("test_images-huge2@example.com"))
        mine = await new_recipe(svc, other)
        refused = await upload(svc, mine["id"], eleven_mib, other)
        assert refused.status_code == 413, refused.text
        assert refused.json()["code"] == "body_too_large"
        assert await image_rows(svc) == []


# --- ownership and deletion (PostgreSQL) ---------------------------------------------------------


async def test_only_the_editor_uploads_and_deletes(svc: Service) -> None:
    owner = bearer(await svc.signed_up("test_images-owner@example.com"))
    other = bearer(await svc.signed_up("test_images-other@example.com"))
    photo = encoded(Image.new("RGB", (500, 400), "purple"), "JPEG")
    private = await new_recipe(svc, owner)
    public = await new_recipe(svc, owner, visibility="public")
    published = await svc.client.post(f"{API}/recipes/{public['id']}/publish", headers=owner)
    assert published.status_code == 200, published.text

    assert (await upload(svc, private["id"], photo, {})).status_code == 401
    hidden = await upload(svc, private["id"], photo, other)
    assert hidden.status_code == 404  # another user's private recipe does not exist for them
    forbidden = await upload(svc, public["id"], photo, other)
    assert forbidden.status_code == 403  # they can see it, not change it
    assert (await upload(svc, "0190a4c4-0000-7000-8000-000000000000", photo,
                         owner)).status_code == 404

    on_private = await upload(svc, private["id"], photo, owner)
    on_public = await upload(svc, public["id"], photo, owner)
    assert on_private.status_code == on_public.status_code == 201
    private_image, public_image = on_private.json()["id"], on_public.json()["id"]
    assert (await svc.client.delete(f"{API}/recipes/{private['id']}/images/{private_image}",
                                    headers=other)).status_code == 404
    assert (await svc.client.delete(f"{API}/recipes/{public['id']}/images/{public_image}",
                                    headers=other)).status_code == 403
    # An image is deleted through its own recipe only.
    assert (await svc.client.delete(f"{API}/recipes/{public['id']}/images/{private_image}",
                                    headers=owner)).status_code == 404
    assert all(row.deleted_at is None for row in await image_rows(svc))

    # An admin may change anyone's recipe.
    admin_email = "test_images-admin@example.com"
    await svc.signed_up(admin_email)
    async with svc.runtime.db.transaction() as session:
        await session.execute(update(User).where(User.email == admin_email)
                              .values(role=ROLE_ADMIN))
    admin = bearer((await svc.login(admin_email)).json())
    assert (await upload(svc, private["id"], photo, admin)).status_code == 201


async def test_delete_marks_the_row_and_removes_the_files(svc: Service, tmp_path: Path) -> None:
    owner = bearer(await svc.signed_up("test_images-delete@example.com"))
    recipe = await new_recipe(svc, owner)
    uploaded = await upload(svc, recipe["id"], phone_photo(800, 500), owner)
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    assert len(stored_files(tmp_path)) == 3
    await fetch_image(svc, body["url"])

    deleted = await svc.client.delete(f"{API}/recipes/{recipe['id']}/images/{body['id']}",
                                      headers=owner)
    assert deleted.status_code == 204
    [row] = await image_rows(svc)
    assert row.deleted_at is not None
    assert await svc.run_jobs() >= 1
    assert stored_files(tmp_path) == []
    gone = await svc.client.get(fetch_path(body["url"]))
    assert gone.status_code == 404
    again = await svc.client.delete(f"{API}/recipes/{recipe['id']}/images/{body['id']}",
                                    headers=owner)
    assert again.status_code == 404
    async with svc.runtime.db.sessions() as session:
        live = await session.scalar(select(func.count()).select_from(RecipeImage)
                                    .where(RecipeImage.deleted_at.is_(None)))
    assert live == 0
