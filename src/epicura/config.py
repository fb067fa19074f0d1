"""Settings: read once from the environment (and `.env`), secrets kept as `SecretStr`.

The names are the seed's (`DATABASE_URL`, `JWT_SECRET`, ...). With none of the external services
configured the service runs on its embedded default: a SQLite file, an in-process Redis stand-in,
local files for storage and e-mails written to a folder.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"
DEV_REFRESH_SECRET = "dev-only-refresh-secret-change-me-0123456789ab"
MIN_SECRET_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    epicura_env: Literal["development", "test", "production"] = "development"
    port: int = 3000
    public_base_url: str = "http://localhost:3000"
    data_dir: Path = Path("var")
    log_level: str = "INFO"

    database_url: str | None = None
    database_pool_size: int = 10
    redis_url: str | None = None
    redis_prefix: str = "epicura:"
    mqtt_broker_url: str | None = None
    # The broker address handed to appliances when they provision, if not MQTT_BROKER_URL's
    # (which may be an internal name only the service can reach).
    mqtt_public_host: str | None = None
    mqtt_public_port: int | None = Field(default=None, ge=1, le=65535)

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_previous_secret: SecretStr | None = None
    jwt_refresh_secret: SecretStr = SecretStr(DEV_REFRESH_SECRET)
    jwt_issuer: str = "https://api.epicura.cloud"
    jwt_audience: str = "epicura-app"
    access_token_ttl_s: int = 15 * 60
    refresh_idle_ttl_s: int = 30 * 86400
    refresh_absolute_ttl_s: int = 90 * 86400
    refresh_grace_s: float = Field(default=5.0, ge=0, le=10)
    jwt_leeway_s: int = 30

    argon2_memory_kib: int = Field(default=19456, ge=19456)
    argon2_time_cost: int = Field(default=2, ge=2)
    argon2_parallelism: int = Field(default=1, ge=1)

    smtp_url: str | None = None
    mail_from: str = "Epicura <no-reply@epicura.cloud>"

    s3_bucket: str | None = None
    s3_endpoint: str | None = None
    s3_region: str | None = None  # else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1
    # Push providers: unset means that platform's tokens get no pushes (inbox and WebSocket
    # still work). Secrets are given inline or as the path of a file holding them.
    fcm_service_account: SecretStr | None = None  # the service-account JSON
    fcm_base_url: str = "https://fcm.googleapis.com"
    apns_key_id: str | None = None
    apns_team_id: str | None = None
    apns_private_key: SecretStr | None = None  # the .p8 key (PEM)
    apns_topic: str | None = None  # the app's bundle id
    apns_base_url: str = "https://api.push.apple.com"  # sandbox: https://api.sandbox.push.apple.com
    apns_ca_file: Path | None = None  # trust a private CA (a local test server)

    cors_origins: list[str] = []
    trusted_proxies: list[str] = []
    max_json_body_bytes: int = 1024 * 1024
    # 10 MiB of image plus room for the multipart envelope (the handler caps the file at 10 MiB).
    max_upload_body_bytes: int = 10 * 1024 * 1024 + 64 * 1024
    # A firmware binary (streamed to storage, never held in memory); its upload route alone
    # takes bodies this large.
    max_firmware_bytes: int = Field(default=2 * 1024**3, ge=1024)
    # How often the job runner looks at every active rollout (new devices, halt, advance); read
    # when the process starts. Short only for demonstrations and end-to-end tests.
    ota_evaluate_every_s: float = Field(default=30.0, ge=0.5, le=3600)
    rate_limit_enabled: bool = True
    recipe_cache_enabled: bool = True
    login_ip_per_minute: int = 20
    user_requests_per_minute: int = 120
    # Appliances call these without a user; a factory line or a simulator shares one address.
    device_provision_ip_per_minute: int = 60
    device_token_ip_per_minute: int = 600

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def is_production(self) -> bool:
        return self.epicura_env == "production"

    @property
    def embedded(self) -> bool:
        """True when no external service is configured: everything runs in this one process."""
        return self.database_url is None and self.redis_url is None

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{self.data_dir / 'epicura.db'}"
        url = self.database_url
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix) :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @cached_property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies)

    def production_problems(self) -> list[str]:
        """What stops this configuration from running in production; empty when it may."""
        problems: list[str] = []
        for name, secret, default in (
            ("JWT_SECRET", self.jwt_secret, DEV_JWT_SECRET),
            ("JWT_REFRESH_SECRET", self.jwt_refresh_secret, DEV_REFRESH_SECRET),
        ):
            value = secret.get_secret_value()
            if value == default:
                problems.append(f"{name} is the development default")
            elif len(value.encode()) < MIN_SECRET_BYTES:
                problems.append(f"{name} is shorter than {MIN_SECRET_BYTES} bytes")
        if self.jwt_secret.get_secret_value() == self.jwt_refresh_secret.get_secret_value():
            problems.append("JWT_SECRET and JWT_REFRESH_SECRET must differ")
        if self.database_url is None or self.is_sqlite:
            problems.append("DATABASE_URL must point at PostgreSQL")
        if self.redis_url is None:
            problems.append("REDIS_URL is not set")
        return problems

    def production_warnings(self) -> list[str]:
        """What works in production but is probably not intended."""
        warnings: list[str] = []
        if self.smtp_url is None:
            warnings.append("SMTP_URL is not set: e-mails are written to a local folder")
        if self.mqtt_broker_url is None:
            warnings.append("MQTT_BROKER_URL is not set: appliances can use HTTPS only")
        if self.s3_bucket is None:
            warnings.append("S3_BUCKET is not set: files are stored on local disk")
        if self.fcm_service_account is None:
            warnings.append("FCM_SERVICE_ACCOUNT is not set: Android devices get no pushes")
        if self.apns_private_key is None or not (self.apns_key_id and self.apns_team_id
                                                 and self.apns_topic):
            warnings.append("APNS_PRIVATE_KEY, APNS_KEY_ID, APNS_TEAM_ID and APNS_TOPIC are not "
                            "all set: iPhones get no pushes")
        if self.public_base_url.startswith("http://"):
            warnings.append("PUBLIC_BASE_URL is not https: e-mailed links would be insecure")
        return warnings

    def masked(self) -> dict[str, object]:
        """The effective settings for display: secrets and URL passwords masked."""
        shown: dict[str, object] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            elif isinstance(value, str) and name.endswith("_url"):
                value = mask_url_password(value)
            elif isinstance(value, Path):
                value = str(value)
            shown[name.upper()] = value
        return shown


def mask_url_password(url: str) -> str:
    """`scheme://user:secret@host` → `scheme://user:********@host`."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, has_password, _ = credentials.partition(":")
    return f"{scheme}://{user}{':********' if has_password else ''}@{host}"
