"""Whether a step program fits the capability profiles a recipe declares."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from epicura.kit.errors import ErrorItem
from epicura.recipes.schemas import CapabilityProfile, VersionContent


def profile_key(model: str, hw_revision: str) -> str:
    return f"{model}/{hw_revision}"


def _violation(
    index: int, field: str, value: object, limit: object, profile: str, kind: str, message: str
) -> ErrorItem:
    return ErrorItem(
        loc=["steps", index, "params", field] if field != "action" else ["steps", index, "action"],
        msg=f"step {index}: {message} ({profile})",
        type=kind,
        step=index,
        field=field,
        value=value,
        limit=limit,
        profile=profile,
    )


def _range(
    index: int, field: str, value: float | None, low: float, high: float, profile: str
) -> Iterator[ErrorItem]:
    if value is None:
        return
    if value < low:
        yield _violation(
            index,
            field,
            value,
            low,
            profile,
            "below_min",
            f"{field} {value:g} is below the minimum {low:g}",
        )
    elif value > high:
        yield _violation(
            index,
            field,
            value,
            high,
            profile,
            "above_max",
            f"{field} {value:g} is above the maximum {high:g}",
        )


def step_violations(content: VersionContent, profile: CapabilityProfile) -> Iterator[ErrorItem]:
    name = profile_key(profile.model, profile.hw_revision)
    for index, step in enumerate(content.steps):
        if step.action not in profile.actions:
            yield _violation(
                index,
                "action",
                step.action,
                profile.actions,
                name,
                "unsupported_action",
                f"action {step.action!r} is not supported",
            )
            continue
        params = step.params.model_dump(exclude_none=True)
        yield from _range(
            index,
            "temperature_c",
            params.get("temperature_c"),
            profile.min_temp_c,
            profile.max_temp_c,
            name,
        )
        yield from _range(
            index, "speed", params.get("speed"), profile.speed_min, profile.speed_max, name
        )
        yield from _range(
            index, "duration_s", params.get("duration_s"), 0, profile.max_duration_s, name
        )
        yield from _range(
            index, "target_weight_g", params.get("target_weight_g"), 0, profile.max_weight_g, name
        )
        if params.get("direction") == "reverse" and not profile.reverse:
            yield _violation(
                index,
                "direction",
                "reverse",
                "forward",
                name,
                "unsupported_direction",
                "reverse rotation is not supported",
            )


def program_violations(
    content: VersionContent, profiles: dict[str, CapabilityProfile]
) -> list[ErrorItem]:
    """Every violation of every declared profile; an unknown profile is one violation itself."""
    found: list[ErrorItem] = []
    for declared in content.requires.profiles:
        profile = profiles.get(declared)
        if profile is None:
            found.append(
                ErrorItem(
                    loc=["requires", "profiles"],
                    msg=f"unknown profile {declared}",
                    type="unknown_profile",
                    field="requires.profiles",
                    value=declared,
                    profile=declared,
                )
            )
            continue
        found.extend(step_violations(content, profile))
    return found


def needed_profiles(contents: Iterable[VersionContent]) -> set[str]:
    return {declared for content in contents for declared in content.requires.profiles}
