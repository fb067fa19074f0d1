"""Private Mosquitto brokers for tests: each on a free port, configured by
`epicura.bridge.broker_config` in its own folder, started as a real process and stopped at the
end. The machine's shared broker on 1883 is never touched.

    with private_broker(tmp_path, dynsec=True) as broker:
        broker.url                # mqtt://epicura-service:…@127.0.0.1:PORT (the service account)
        broker.stop(); broker.start()   # a restart keeps the port, the folder and persistence

`dynsec=False` gives a broker that lets anonymous clients do anything (no service account).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from epicura.bridge.broker_config import WrittenConfig, write_config

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 3


class BrokerFailed(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class PrivateBroker:
    folder: Path
    config: WrittenConfig
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    host = "127.0.0.1"

    @property
    def port(self) -> int:
        return self.config.port

    @property
    def url(self) -> str:
        """MQTT_BROKER_URL for the service (with its credentials when dynsec is on)."""
        return self.config.url

    @property
    def service_username(self) -> str | None:
        return self.config.username

    @property
    def service_password(self) -> str | None:
        return self.config.password

    @property
    def log_path(self) -> Path:
        return self.folder / "mosquitto.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start the process and wait (polling, bounded) until it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            return
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config.conf_path)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + ready_timeout_s
        while not _accepts(self.port):
            with suppress(subprocess.TimeoutExpired):
                code = self.process.wait(timeout=0.05)  # doubles as the poll interval
                self._close_log()
                raise BrokerFailed(f"mosquitto exited with {code}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerFailed(f"mosquitto did not listen within {ready_timeout_s} s")

    def stop(self) -> None:
        """SIGTERM (Mosquitto saves its persistence file), SIGKILL if it hangs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL: the broker loses what it had not saved."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def start_broker(folder: Path, *, dynsec: bool = True,
                 service_password: str | None = None) -> PrivateBroker:
    """A started broker in `folder` (created); the caller stops it."""
    for attempt in range(PORT_ATTEMPTS):
        config = write_config(folder, port=_free_port(), dynsec=dynsec,
                              service_password=service_password, overwrite=True)
        broker = PrivateBroker(folder, config)
        try:
            broker.start()
        except BrokerFailed:
            # Another process may have taken the free port between the check and the bind.
            if attempt == PORT_ATTEMPTS - 1 or "Address already in use" not in broker.log():
                raise
            continue
        return broker
    raise AssertionError("unreachable")


@contextmanager
def private_broker(folder: Path, *, dynsec: bool = True,
                   service_password: str | None = None) -> Iterator[PrivateBroker]:
    broker = start_broker(folder, dynsec=dynsec, service_password=service_password)
    try:
        yield broker
    finally:
        broker.stop()
