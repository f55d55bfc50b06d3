"""JSON as tools and files give it, named once: each reader checks the values it uses."""

from __future__ import annotations

JsonScalar = None | bool | int | float | str
JsonValue = JsonScalar | list["JsonValue"] | dict[str, "JsonValue"]
JsonObject = dict[str, JsonValue]
