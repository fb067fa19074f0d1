"""Object storage: local files on the embedded default, S3 (or an S3-compatible server) when
`S3_BUCKET` is set. Both go through obstore.

Objects are reached by clients through expiring URLs, never through the API's credentials:

* S3: a presigned GET (SigV4) for the object.
* Local files: `GET /files/{key}?exp=…&sig=…`, served by this service, where `sig` is an HMAC of
  the key and the expiry under a key derived from `JWT_REFRESH_SECRET` (see `UrlSigner`).

URLs handed out for lists are stable within an expiry window (`url(..., stable=True)`, the
default): the expiry is rounded up to the end of the next window, so every caller in the same
window gets byte-identical URLs (cacheable pages) that stay valid between one and two windows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import obstore
import structlog
from obstore.store import LocalStore, S3Store

from epicura.kit import clock

if TYPE_CHECKING:
    from obstore.store import ClientConfig

    from epicura.config import Settings
    from epicura.kit.runtime import Runtime

log = structlog.get_logger("epicura.storage")

DEFAULT_URL_TTL = timedelta(hours=1)
MAX_S3_PRESIGN = timedelta(days=7)  # the SigV4 limit
URL_CACHE_LIMIT = 50_000
READINESS_PROBE_KEY = "_epicura/readyz"
FILES_PATH = "/files"
CONTENT_TYPES = {
    "webp": "image/webp", "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png",
    "json": "application/json", "bin": "application/octet-stream",
}

# Keys are slash-separated segments of safe characters; a segment never starts with a dot, so
# `.` and `..` (and hidden files) are impossible.
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}"
_KEY = re.compile(rf"^{_SEGMENT}(?:/{_SEGMENT}){{0,15}}$")
MAX_KEY_LENGTH = 512


class InvalidKeyError(ValueError):
    pass


class ObjectMissingError(LookupError):
    pass


def valid_key(key: str) -> bool:
    return len(key) <= MAX_KEY_LENGTH and _KEY.fullmatch(key) is not None


def check_key(key: str) -> str:
    if not valid_key(key):
        raise InvalidKeyError(f"invalid storage key: {key!r}")
    return key


def content_type_of(key: str) -> str:
    suffix = key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
    return CONTENT_TYPES.get(suffix, "application/octet-stream")


def window_expiry(now_s: int, ttl_s: int) -> int:
    """The end of the window after the current one: valid for between `ttl` and 2×`ttl`, and
    the same for every call within one window."""
    return (now_s // ttl_s + 2) * ttl_s


class UrlSigner:
    """HMAC-SHA256 over (key, expiry) for URLs the service serves itself."""

    def __init__(self, secret: bytes) -> None:
        # A key of its own, derived from the secret: a signature here is useless anywhere else.
        self._key = hmac.new(secret, b"epicura/storage-url/v1", hashlib.sha256).digest()

    def sign(self, key: str, exp: int) -> str:
        mac = hmac.new(self._key, f"GET\n{key}\n{exp}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def verify(self, key: str, exp: int, sig: str, *, now_s: int | None = None) -> bool:
        now = int(clock.utcnow().timestamp()) if now_s is None else now_s
        if exp <= now:
            return False
        return hmac.compare_digest(self.sign(key, exp).encode(), sig.encode("utf-8", "replace"))


@dataclass
class StoredObject:
    size: int
    content_type: str
    chunks: AsyncIterator[bytes]


class Storage(ABC):
    """put / get / delete objects by key, and hand out expiring URLs to them."""

    kind: str

    def __init__(self, store: Any) -> None:
        self._store = store
        self._url_cache: dict[tuple[str, int], str] = {}

    @property
    def store(self) -> Any:
        return self._store

    async def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None:
        await obstore.put_async(self.store, check_key(key), data,
                                **self._put_options(content_type or content_type_of(key)))

    def _put_options(self, content_type: str) -> dict[str, Any]:
        return {}

    async def get(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self.store, check_key(key))
            return bytes(await result.bytes_async())
        except FileNotFoundError as exc:
            raise ObjectMissingError(key) from exc

    async def open(self, key: str) -> StoredObject:
        """The object as a stream (for serving files without holding them in memory)."""
        try:
            result = await obstore.get_async(self.store, check_key(key))
        except FileNotFoundError as exc:
            raise ObjectMissingError(key) from exc

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in result.stream(min_chunk_size=256 * 1024):
                yield bytes(chunk)

        return StoredObject(size=int(result.meta["size"]), content_type=content_type_of(key),
                            chunks=chunks())

    async def exists(self, key: str) -> bool:
        try:
            await obstore.head_async(self.store, check_key(key))
        except FileNotFoundError:
            return False
        return True

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove objects; a key that is already gone is not an error."""
        for key in keys:
            try:
                await obstore.delete_async(self.store, check_key(key))
            except FileNotFoundError:
                continue

    def url(self, key: str, expires_in: timedelta = DEFAULT_URL_TTL, *, stable: bool = True) -> str:
        """A URL that GETs the object until it expires. With `stable`, the expiry is the end of the
        next `expires_in` window (valid 1–2 × `expires_in`, identical within a window)."""
        check_key(key)
        now_s = int(clock.utcnow().timestamp())
        ttl_s = max(1, int(expires_in.total_seconds()))
        if not stable:
            return self._sign(key, now_s, now_s + ttl_s)
        exp = window_expiry(now_s, ttl_s)
        cached = self._url_cache.get((key, exp))
        if cached is None:
            if len(self._url_cache) >= URL_CACHE_LIMIT:
                self._url_cache.clear()
            cached = self._url_cache[(key, exp)] = self._sign(key, now_s, exp)
        return cached

    @abstractmethod
    def _sign(self, key: str, now_s: int, exp: int) -> str: ...

    async def check(self) -> None:  # noqa: B027 - optional hook, nothing to check by default
        """Raises when the store cannot be reached (readiness)."""


class LocalStorage(Storage):
    kind = "local"

    def __init__(self, root: Path, signer: UrlSigner, base_url: str) -> None:
        super().__init__(None)  # the folder is made on first use, not when the service starts
        self.root = root
        self.signer = signer
        self.base_url = base_url.rstrip("/")

    @property
    def store(self) -> Any:
        if self._store is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._store = LocalStore(prefix=self.root.resolve(), automatic_cleanup=True)
        return self._store

    def _sign(self, key: str, now_s: int, exp: int) -> str:
        return self.signed_path_url(key, exp, self.signer.sign(key, exp))

    def signed_path_url(self, key: str, exp: int, sig: str) -> str:
        return f"{self.base_url}{FILES_PATH}/{quote(key)}?exp={exp}&sig={sig}"


class S3Storage(Storage):
    kind = "s3"

    def __init__(self, bucket: str, endpoint: str | None = None,
                 region: str | None = None) -> None:
        options: ClientConfig = {}
        config: dict[str, Any] = {}
        if endpoint:
            config["endpoint"] = endpoint
            options["allow_http"] = endpoint.startswith("http://")
        if region:
            config["region"] = region
        super().__init__(S3Store(bucket, client_options=options or None, **config))
        self.bucket = bucket

    def _put_options(self, content_type: str) -> dict[str, Any]:
        return {"attributes": {"Content-Type": content_type,
                               "Cache-Control": "private, max-age=86400, immutable"}}

    def _sign(self, key: str, now_s: int, exp: int) -> str:
        seconds = min(exp - now_s, int(MAX_S3_PRESIGN.total_seconds()))
        return obstore.sign(self.store, "GET", key, timedelta(seconds=seconds))

    async def check(self) -> None:
        """A HEAD of a probe object: cheap, and it tells a missing bucket (the probe cannot be
        written) from a missing object (written once, then found)."""
        try:
            await obstore.head_async(self.store, READINESS_PROBE_KEY)
        except FileNotFoundError:
            await obstore.put_async(self.store, READINESS_PROBE_KEY, b"ok")


def create_storage(settings: Settings, secret: bytes) -> Storage:
    if settings.s3_bucket:
        return S3Storage(settings.s3_bucket, settings.s3_endpoint, settings.s3_region)
    return LocalStorage(settings.data_dir / "files", UrlSigner(secret), settings.public_base_url)


def install(rt: Runtime) -> Storage:
    """Create the process's storage (once) and register its readiness check."""
    existing: Storage | None = rt.extras.get("storage")
    if existing is not None:
        return existing
    storage = create_storage(rt.settings, rt.refresh_key)
    rt.extras["storage"] = storage
    if isinstance(storage, S3Storage):

        async def check_storage(_rt: Runtime) -> None:
            await storage.check()

        rt.extras.setdefault("readiness_checks", {})["storage"] = check_storage
    log.info("storage_ready", kind=storage.kind)
    return storage


def storage_of(rt: Runtime) -> Storage:
    return install(rt)
