"""The simulator's memory between runs: each simulated appliance's serial, factory secret and,
once provisioned, its device id and secret, so a rerun reuses them instead of provisioning
again. It holds secrets: written owner-only (0600), atomically."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1


@dataclass
class Entry:
    serial: str
    factory_secret: str
    device_id: str | None = None
    device_secret: str | None = None
    mqtt_host: str | None = None
    mqtt_port: int | None = None
    sync_cursor: str | None = None
    firmware_version: str | None = None  # once updated (None: the factory version)

    @property
    def provisioned(self) -> bool:
        return self.device_id is not None and self.device_secret is not None


@dataclass
class State:
    path: Path
    entries: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        state = cls(path)
        if not path.exists():
            return state
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: unknown state file format {data.get('format')!r}")
        for raw in data.get("appliances", []):
            known = {name: raw.get(name) for name in Entry.__dataclass_fields__}
            entry = Entry(**known)
            state.entries[entry.serial] = entry
        return state

    def ensure(self, serials: list[str]) -> list[Entry]:
        """The entries of these serials, creating (with a fresh factory secret) the missing."""
        for serial in serials:
            if serial not in self.entries:
                self.entries[serial] = Entry(serial, secrets.token_urlsafe(24))
        return [self.entries[serial] for serial in serials]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"format": FORMAT,
                                "appliances": [asdict(e) for e in self.entries.values()]}
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
        os.replace(temporary, self.path)


def serials(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{index:06d}" for index in range(1, count + 1)]
