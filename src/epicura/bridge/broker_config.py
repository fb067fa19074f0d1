"""A development Mosquitto: `mosquitto.conf` and the dynamic-security file with the service's
account, written by `epicura broker config`.

The service's account may administer the dynamic-security plugin (to create, rotate and remove
appliance credentials), read every appliance's `up/` topics (shared subscription included) and
publish to every appliance's `down/` topics; nothing else. Every other client gets what its own
role grants: the default ACL access denies everything but unsubscribing.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

SERVICE_USERNAME = "epicura-service"
SERVICE_ROLE = "epicura-service"
CONF_NAME = "mosquitto.conf"
DYNSEC_NAME = "dynamic-security.json"
DEFAULT_PORT = 1883
DEFAULT_BIND = "127.0.0.1"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
SHARE_GROUP = "epicura"

# The plugin hashes with PBKDF2-HMAC-SHA512 over a 12-byte salt into 64 bytes, both stored base64;
# it checks the salt length on load. Its own default is 101 iterations; ours is higher because
# an operator may choose a weak --service-password (the cost is paid once per connection).
PBKDF2_SALT_BYTES = 12
PBKDF2_ITERATIONS = 20_000

PLUGIN_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
    "/opt/homebrew/lib/mosquitto_dynamic_security.so",
    "/usr/local/opt/mosquitto/lib/mosquitto_dynamic_security.so",
)

# Queue and flow limits sized for the bridge's persistent session: Mosquitto's defaults (1,000
# queued messages, 20 in flight) would drop telemetry while the bridge restarts and cap a bridge
# that acknowledges in batches at 20 unacknowledged messages.
MAX_QUEUED_MESSAGES = 1_000_000
MAX_QUEUED_BYTES = 1024 * 1024 * 1024
MAX_INFLIGHT_MESSAGES = 1000
PERSISTENT_CLIENT_EXPIRATION = "14d"
# Above the spec's 256 KiB payload limit, so an oversized payload still reaches the service to be
# counted and dropped; anything much larger is refused by the broker itself.
MAX_PACKET_BYTES = 512 * 1024


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS,
                  salt: bytes | None = None) -> dict[str, Any]:
    """The `password`, `salt` and `iterations` fields of a dynamic-security client."""
    salt = salt if salt is not None else secrets.token_bytes(PBKDF2_SALT_BYTES)
    if len(salt) != PBKDF2_SALT_BYTES:
        raise ValueError(f"the plugin expects a {PBKDF2_SALT_BYTES}-byte salt")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


def acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def service_acls() -> list[dict[str, Any]]:
    control = "$CONTROL/dynamic-security/#"
    up, down = "epicura/v1/+/up/#", "epicura/v1/+/down/#"
    return [
        acl("publishClientSend", control),
        acl("publishClientReceive", control),
        acl("subscribePattern", control),
        acl("subscribePattern", f"$share/{SHARE_GROUP}/{up}"),
        acl("subscribePattern", up),
        acl("publishClientReceive", up),
        acl("publishClientSend", down),
    ]


def dynsec_document(service_username: str, service_password: str) -> dict[str, Any]:
    """The plugin's whole state: the service's client and role, default access denied."""
    client = {
        "username": service_username,
        "textName": "Epicura service (bridge, workers)",
        **hash_password(service_password),
        "roles": [{"rolename": SERVICE_ROLE}],
    }
    return {
        "clients": [client],
        "groups": [],
        "roles": [{"rolename": SERVICE_ROLE, "acls": service_acls()}],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
    }


def find_plugin() -> Path | None:
    for candidate in PLUGIN_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def mosquitto_conf(folder: Path, port: int, *, bind: str = DEFAULT_BIND,
                   plugin: Path | None = None, user: str | None = None) -> str:
    """The broker's configuration. Without `plugin`, anonymous clients may do anything (for
    tests that need a plain private broker)."""
    folder = folder.resolve()
    lines = [
        "# Epicura development broker, written by `epicura broker config`.",
        "per_listener_settings false",
        f"listener {port} {bind}",
        f"allow_anonymous {'false' if plugin else 'true'}",
    ]
    if plugin is not None:
        lines += [f"plugin {plugin}", f"plugin_opt_config_file {folder / DYNSEC_NAME}"]
    if user is not None:
        # Started as root, Mosquitto would switch to the `mosquitto` user, which cannot write the
        # persistence and dynamic-security files in this folder.
        lines.append(f"user {user}")
    lines += [
        "persistence true",
        f"persistence_location {folder}/",
        "autosave_interval 60",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        f"persistent_client_expiration {PERSISTENT_CLIENT_EXPIRATION}",
        f"max_packet_size {MAX_PACKET_BYTES}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
    ]
    return "\n".join(lines) + "\n"


def broker_url(username: str, password: str, port: int, host: str = "127.0.0.1") -> str:
    return f"mqtt://{quote(username, safe='')}:{quote(password, safe='')}@{host}:{port}"


@dataclass(frozen=True)
class WrittenConfig:
    conf_path: Path
    dynsec_path: Path | None
    port: int
    username: str | None
    password: str | None

    @property
    def url(self) -> str:
        if self.username is None or self.password is None:
            return f"mqtt://127.0.0.1:{self.port}"
        return broker_url(self.username, self.password, self.port)

    @property
    def start_command(self) -> str:
        return f"mosquitto -c {self.conf_path}"


class ConfigExists(Exception):
    """The folder already holds a broker configuration (with appliance credentials, maybe)."""


def write_config(folder: Path, *, port: int = DEFAULT_PORT, bind: str = DEFAULT_BIND,
                 service_username: str = SERVICE_USERNAME, service_password: str | None = None,
                 plugin: Path | None = None, dynsec: bool = True,
                 overwrite: bool = False) -> WrittenConfig:
    """Write `mosquitto.conf` (and, with `dynsec`, the dynamic-security file) into `folder`."""
    folder = folder.resolve()
    conf_path, dynsec_path = folder / CONF_NAME, folder / DYNSEC_NAME
    if not overwrite and (conf_path.exists() or dynsec_path.exists()):
        raise ConfigExists(f"{folder} already holds a broker configuration")
    folder.mkdir(parents=True, exist_ok=True)
    user = getpass.getuser() if os.geteuid() == 0 else None
    if not dynsec:
        conf_path.write_text(mosquitto_conf(folder, port, bind=bind, user=user))
        return WrittenConfig(conf_path, None, port, None, None)
    plugin = plugin or find_plugin()
    if plugin is None:
        raise FileNotFoundError("mosquitto_dynamic_security.so not found; give its path")
    password = service_password or secrets.token_urlsafe(32)
    document = dynsec_document(service_username, password)
    _write_private(dynsec_path, json.dumps(document, indent=2) + "\n")
    conf_path.write_text(mosquitto_conf(folder, port, bind=bind, plugin=plugin, user=user))
    return WrittenConfig(conf_path, dynsec_path, port, service_username, password)


def _write_private(path: Path, text: str) -> None:
    """Owner-only from the start: the file holds password hashes."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
