"""Recipe images: checked by content, cleaned, re-encoded to sized WebP renditions, stored.

An upload is decoded with Pillow (JPEG, PNG or WebP only, whatever the file name or the declared
type say), refused when it is anything else, truncated, or has more than `MAX_PIXELS` pixels
(decompression bombs included). The image is turned upright from its EXIF orientation, converted
to sRGB, stripped of all metadata (EXIF, GPS, XMP, ICC) and re-encoded as WebP at each width of
`WIDTHS`, never upscaled: every width has its object, so that a URL can be built from an image id
alone (`recipes/images/{image_id}/{width}.webp`); for a small original several widths hold the
same picture. Pillow's work is CPU-bound and runs in worker threads, at most `DECODE_SLOTS` at a
time, so that a burst of uploads cannot starve the event loop or exhaust memory.
"""

from __future__ import annotations

import asyncio
import io
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import obstore.exceptions
import structlog
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from epicura.auth.models import User
from epicura.kit import audit, clock, jobs
from epicura.kit.errors import BodyTooLarge, DependencyUnavailable, NotFound, ProblemError
from epicura.kit.ids import uuid7
from epicura.kit.runtime import Runtime
from epicura.kit.storage import Storage, storage_of
from epicura.recipes.models import ARCHIVED, Recipe, RecipeImage
from epicura.recipes.service import RecipeArchived

log = structlog.get_logger("epicura.recipes.images")

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000
WIDTHS = (320, 640, 1280)
LIST_WIDTH = 640  # the rendition list summaries link to
MAX_ASPECT = 2  # a rendition is at most twice as tall as its nominal width
MAX_IMAGES_PER_RECIPE = 50
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
WEBP_QUALITY = 82
DECODE_SLOTS = 2
DELETE_FILES_JOB = "recipes.delete_image_files"

# Pillow warns (DecompressionBombWarning) between its own limit and twice that, and raises above.
# A warning would let the bomb be decoded: make it an error everywhere, and refuse it below.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class InvalidImage(ProblemError):
    status = 422
    code = "invalid_image"
    title = "The file is not a usable JPEG, PNG or WebP image"


class TooManyImages(ProblemError):
    status = 409
    code = "too_many_images"
    title = f"A recipe has at most {MAX_IMAGES_PER_RECIPE} images"


class ImageTooLarge(BodyTooLarge):
    title = "The image is larger than 10 MiB"


@dataclass(frozen=True)
class Rendition:
    nominal: int  # the width in the key (320, 640, 1280)
    width: int
    height: int
    data: bytes


def image_key(image_id: uuid.UUID | str, width: int) -> str:
    canonical = image_id if isinstance(image_id, uuid.UUID) else uuid.UUID(str(image_id))
    return f"recipes/images/{canonical}/{width}.webp"


def image_keys(image_id: uuid.UUID | str) -> list[str]:
    return [image_key(image_id, width) for width in WIDTHS]


# --- Pillow (runs in a worker thread) -----------------------------------------------------------


def fit(size: tuple[int, int], nominal: int) -> tuple[int, int]:
    """The size of the rendition for `nominal`: at most `nominal` wide and `MAX_ASPECT` ×
    `nominal` tall, aspect kept, never larger than the original."""
    width, height = size
    scale = min(1.0, nominal / width, MAX_ASPECT * nominal / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode(data: bytes) -> Image.Image:
    """The upright, metadata-free sRGB picture (RGB, or RGBA when it has real transparency)."""
    with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as opened:
        if opened.format not in ALLOWED_FORMATS:
            raise InvalidImage(f"{opened.format} images are not accepted")
        width, height = opened.size
        if width < 1 or height < 1 or width * height > MAX_PIXELS:
            raise InvalidImage(f"The image has more than {MAX_PIXELS} pixels")
        if opened.format == "JPEG":
            largest = max(WIDTHS)
            opened.draft(None, (largest, largest))  # decode at a reduced scale when that suffices
        opened.load()  # a truncated or corrupt file fails here
        upright = ImageOps.exif_transpose(opened)
    return _to_srgb(upright)


def _to_srgb(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    target = "RGBA" if has_alpha else "RGB"
    icc = image.info.get("icc_profile")
    converted: Image.Image | None = None
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=target)
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None  # an unusable profile: plain conversion below
    if converted is None:
        converted = image if image.mode == target else image.convert(target)
    if target == "RGBA" and converted.getchannel("A").getextrema() == (255, 255):
        converted = converted.convert("RGB")  # fully opaque: no alpha channel to carry
    converted.info = {}
    return converted


def _encode(image: Image.Image) -> bytes:
    image.info = {}  # nothing of the original's metadata is written
    out = io.BytesIO()
    image.save(out, "WEBP", quality=WEBP_QUALITY, method=4)
    return out.getvalue()


def process(data: bytes) -> list[Rendition]:
    """Decode, check and re-encode one upload; raises `InvalidImage`."""
    if not data:
        raise InvalidImage("The file is empty")
    try:
        base = _decode(data)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"The image has more than {MAX_PIXELS} pixels") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage("The file is not a JPEG, PNG or WebP image") from exc
    except Exception as exc:  # Pillow reports corrupt data with many exception types
        log.info("image_decode_failed", error=type(exc).__name__)
        raise InvalidImage("The image could not be decoded (truncated or corrupt)") from exc
    renditions: list[Rendition] = []
    source = base
    encoded: dict[tuple[int, int], bytes] = {}
    for nominal in sorted(WIDTHS, reverse=True):
        size = fit(base.size, nominal)
        if size not in encoded:
            if size != source.size:
                source = source.resize(size, Image.Resampling.LANCZOS)
            encoded[size] = _encode(source)
        renditions.append(Rendition(nominal, size[0], size[1], encoded[size]))
    return sorted(renditions, key=lambda rendition: rendition.nominal)


# --- Service ------------------------------------------------------------------------------------


def _decode_limiter(rt: Runtime) -> anyio.CapacityLimiter:
    limiter: anyio.CapacityLimiter | None = rt.extras.get("image_decode_limiter")
    if limiter is None:
        limiter = rt.extras["image_decode_limiter"] = anyio.CapacityLimiter(DECODE_SLOTS)
    return limiter


def image_view(storage: Storage, image_id: uuid.UUID, width: int, height: int) -> dict[str, Any]:
    """The API representation: the largest rendition's URL and size, and every rendition's URL."""
    renditions = {str(nominal): storage.url(image_key(image_id, nominal)) for nominal in WIDTHS}
    return {
        "id": str(image_id),
        "url": renditions[str(max(WIDTHS))],
        "width": width,
        "height": height,
        "renditions": renditions,
    }


async def upload(
    rt: Runtime, session: AsyncSession, recipe: Recipe, user: User, data: bytes
) -> dict[str, Any]:
    """Store an image for `recipe` (the caller has checked it may edit it); its id can then be
    listed in a version's `images`."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageTooLarge()
    if recipe.status == ARCHIVED:
        raise RecipeArchived()
    active = await session.scalar(
        select(func.count())
        .select_from(RecipeImage)
        .where(RecipeImage.recipe_id == recipe.id, RecipeImage.deleted_at.is_(None))
    )
    if (active or 0) >= MAX_IMAGES_PER_RECIPE:
        raise TooManyImages()
    renditions = await anyio.to_thread.run_sync(process, data, limiter=_decode_limiter(rt))
    image_id = uuid7()
    storage = storage_of(rt)
    keys = [image_key(image_id, rendition.nominal) for rendition in renditions]
    try:
        await asyncio.gather(
            *(
                storage.put(key, rendition.data, content_type="image/webp")
                for key, rendition in zip(keys, renditions, strict=True)
            )
        )
    except (obstore.exceptions.BaseError, OSError) as exc:
        log.warning("image_store_failed", error=type(exc).__name__)
        await _forget(storage, keys)
        raise DependencyUnavailable("The file store is unavailable") from exc
    largest = renditions[-1]
    session.add(
        RecipeImage(
            id=image_id,
            recipe_id=recipe.id,
            uploaded_by=user.id,
            width=largest.width,
            height=largest.height,
            renditions=[rendition.nominal for rendition in renditions],
            created_at=clock.utcnow(),
            deleted_at=None,
        )
    )
    await session.flush()
    audit.record(
        session,
        "recipe.image_added",
        actor_id=user.id,
        target_type="recipe",
        target_id=recipe.id,
        image_id=str(image_id),
    )
    return image_view(storage, image_id, largest.width, largest.height)


async def _forget(storage: Storage, keys: Sequence[str]) -> None:
    try:
        await storage.delete(keys)
    except (obstore.exceptions.BaseError, OSError):
        log.warning("image_cleanup_failed", keys=list(keys))


async def delete(
    rt: Runtime, session: AsyncSession, recipe: Recipe, user: User, image_id: uuid.UUID
) -> None:
    """Mark the image deleted; its files are removed by a job once this transaction commits."""
    row = await session.scalar(
        select(RecipeImage)
        .where(
            RecipeImage.id == image_id,
            RecipeImage.recipe_id == recipe.id,
            RecipeImage.deleted_at.is_(None),
        )
        .with_for_update()
    )
    if row is None:
        raise NotFound("No such image")
    row.deleted_at = clock.utcnow()
    rt.jobs.enqueue(session, DELETE_FILES_JOB, {"keys": image_keys(image_id)})
    audit.record(
        session,
        "recipe.image_deleted",
        actor_id=user.id,
        target_type="recipe",
        target_id=recipe.id,
        image_id=str(image_id),
    )


@jobs.handler(DELETE_FILES_JOB)
async def delete_files(ctx: jobs.JobContext, payload: dict[str, Any]) -> None:
    rt: Runtime = ctx.extras["runtime"]
    await storage_of(rt).delete(payload["keys"])


def install(rt: Runtime) -> None:
    """Let list summaries turn a cover image id into a URL (stable within the hour window)."""
    storage = storage_of(rt)

    def recipe_image_url(image_id: uuid.UUID | str | None) -> str | None:
        if image_id is None:
            return None
        return storage.url(image_key(image_id, LIST_WIDTH))

    rt.extras["recipe_image_url"] = recipe_image_url
