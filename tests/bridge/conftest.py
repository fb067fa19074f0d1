"""Fixtures for the MQTT side: private Mosquitto brokers on free ports (tests/brokers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import PrivateBroker, private_broker


@pytest.fixture(scope="session")
def dynsec_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A broker with the dynamic-security plugin, configured by `epicura broker config`'s code:
    `.url` is the service account's MQTT_BROKER_URL (`.service_username`/`.service_password`)."""
    with private_broker(tmp_path_factory.mktemp("dynsec-broker"), dynsec=True) as broker:
        yield broker


@pytest.fixture(scope="session")
def plain_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A broker without authentication (anonymous clients may do anything), with the same queue
    and persistence settings; `.url` is `mqtt://127.0.0.1:PORT`."""
    with private_broker(tmp_path_factory.mktemp("plain-broker"), dynsec=False) as broker:
        yield broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A broker of this test alone, without authentication (persistent sessions and retained
    messages of other tests stay out of its way)."""
    with private_broker(tmp_path / "broker", dynsec=False) as started:
        yield started
