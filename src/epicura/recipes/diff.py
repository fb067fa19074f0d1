"""Field-level differences between two versions' contents.

Ingredients are matched by their `key` (so reordering is not a change of every ingredient),
steps by position, lists of plain values compared whole.
"""

from __future__ import annotations

from typing import Any

from epicura.recipes.schemas import FieldChange


def diff_contents(before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    changes: list[FieldChange] = []
    _diff_value("", before, after, changes)
    return changes


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _diff_value(path: str, before: Any, after: Any, out: list[FieldChange]) -> None:
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in list(dict.fromkeys([*before, *after])):
            sub = _join(path, key)
            if key not in before:
                out.append(FieldChange(path=sub, after=after[key], change="added"))
            elif key not in after:
                out.append(FieldChange(path=sub, before=before[key], change="removed"))
            else:
                _diff_value(sub, before[key], after[key], out)
    elif path == "ingredients" and isinstance(before, list) and isinstance(after, list):
        _diff_keyed(path, before, after, out)
    elif isinstance(before, list) and isinstance(after, list) and _all_dicts(before, after):
        _diff_positional(path, before, after, out)
    else:
        out.append(FieldChange(path=path, before=before, after=after, change="changed"))


def _all_dicts(*lists: list[Any]) -> bool:
    return all(isinstance(item, dict) for items in lists for item in items)


def _diff_keyed(path: str, before: list[Any], after: list[Any], out: list[FieldChange]) -> None:
    old = {item["key"]: item for item in before}
    new = {item["key"]: item for item in after}
    for key in list(dict.fromkeys([*old, *new])):
        sub = f"{path}[{key}]"
        if key not in old:
            out.append(FieldChange(path=sub, after=new[key], change="added"))
        elif key not in new:
            out.append(FieldChange(path=sub, before=old[key], change="removed"))
        else:
            _diff_value(sub, old[key], new[key], out)


def _diff_positional(
    path: str, before: list[Any], after: list[Any], out: list[FieldChange]
) -> None:
    for index in range(max(len(before), len(after))):
        sub = f"{path}[{index}]"
        if index >= len(before):
            out.append(FieldChange(path=sub, after=after[index], change="added"))
        elif index >= len(after):
            out.append(FieldChange(path=sub, before=before[index], change="removed"))
        else:
            _diff_value(sub, before[index], after[index], out)
