"""JSON as tools and files give it, named once: each reader checks the values it uses."""

from __future__ import annotations

from collections.abc import Mapping

JsonScalar = None | bool | int | float | str
JsonValue = JsonScalar | list["JsonValue"] | dict[str, "JsonValue"]
JsonObject = dict[str, JsonValue]


def items_of(value: JsonValue) -> list[JsonValue]:
    """An array's items (a tuple built in memory counts); nothing when it is not one."""
    return list(value) if isinstance(value, (list, tuple)) else []


def table_of(value: JsonValue) -> Mapping[str, JsonValue]:
    """An object's fields; none when it is not one."""
    return value if isinstance(value, Mapping) else {}
