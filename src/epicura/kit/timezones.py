"""The IANA time zone type of request bodies (a user's and an appliance's `timezone`)."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema


@cache
def _timezone_names() -> frozenset[str]:
    # Read once: listing the zone files takes ~0.1 s and would block the event loop per request.
    return frozenset(zoneinfo.available_timezones())


def _known_timezone(value: str) -> str:
    if len(value) > 64 or value not in _timezone_names():
        raise ValueError("unknown IANA time zone")
    return value


# The document says which strings are accepted (a bare "string" would promise any).
TimeZone = Annotated[
    str,
    AfterValidator(_known_timezone),
    WithJsonSchema(
        {
            "type": "string",
            "format": "iana-time-zone",
            "description": "An IANA time zone name, e.g. `Europe/Paris` or `UTC`",
        }
    ),
]
