"""Semantic versions (semver 2.0.0) and their precedence: what "newer" means for firmware."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
MAX_LENGTH = 40  # the appliances' firmware_version column


class InvalidVersion(ValueError):
    pass


@total_ordering
@dataclass(frozen=True)
class Version:
    """Compared by precedence: build metadata is ignored, a pre-release is below its release."""

    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()
    text: str = ""

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # Numeric identifiers rank below alphanumeric ones; a shorter list of equal prefix first.
        pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.pre)
        return self.major, self.minor, self.patch, 0 if self.pre else 1, pre

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __str__(self) -> str:
        return self.text


def parse(text: str) -> Version:
    match = _SEMVER.fullmatch(text) if len(text) <= MAX_LENGTH else None
    if match is None:
        raise InvalidVersion(f"not a semantic version: {text[:60]!r}")
    pre = tuple(int(p) if p.isdigit() else p for p in match.group(4).split(".")) \
        if match.group(4) else ()
    return Version(int(match.group(1)), int(match.group(2)), int(match.group(3)), pre, text)


def parse_or_none(text: str | None) -> Version | None:
    if text is None:
        return None
    try:
        return parse(text)
    except InvalidVersion:
        return None
