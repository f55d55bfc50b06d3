"""The Setup form's grid as text, and the sweep it stands for.

A field left empty counts as the value its placeholder shows: the chosen preset's (so a
cleared field and the placeholder never disagree).
"""

from __future__ import annotations

from collections.abc import Mapping

from backends.sweep import SweepError, SweepSpec, parse_int_list

# Custom grid fields: input id -> label. Their placeholders are the preset's values.
GRID_FIELDS = {
    "prompts": "prompt sizes",
    "gens": "generation sizes",
    "depths": "depths",
    "type-k": "K cache",
    "type-v": "V cache",
    "ngl": "-ngl",
    "ncmoe": "-ncmoe",
    "reps": "repetitions",
}
# What an empty -ngl or -ncmoe means, shown as their placeholder when the preset sets none.
EMPTY_WORDS = {"ngl": "all", "ncmoe": "none"}
FA_CHOICES = (("on", "1"), ("off", "0"), ("build default", "default"))


def _ints(values: tuple[int, ...]) -> str:
    return ",".join(f"{v // 1024}k" if v and v % 1024 == 0 else str(v) for v in values)


def fields_from_spec(spec: SweepSpec) -> dict[str, str]:
    """The form's text for a sweep ("" where the sweep leaves a setting to llama-bench)."""
    return {
        "prompts": _ints(spec.prompts), "gens": _ints(spec.gens), "depths": _ints(spec.depths),
        "type-k": spec.type_k, "type-v": spec.type_v,
        "ngl": "" if spec.n_gpu_layers is None else str(spec.n_gpu_layers),
        "ncmoe": "auto" if spec.auto_ncmoe else ("" if spec.n_cpu_moe is None
                                                 else str(spec.n_cpu_moe)),
        "reps": str(spec.repetitions),
    }


def placeholders(spec: SweepSpec) -> dict[str, str]:
    """What each empty field stands for: the preset's value, or the word for "unset"."""
    return {key: value or EMPTY_WORDS.get(key, "") for key, value in fields_from_spec(spec).items()}


def effective(values: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    """The form's values with each empty field read as its placeholder."""
    return {key: (values.get(key, "").strip() or defaults.get(key, "")) for key in GRID_FIELDS}


def _one_int(text: str, label: str, empty: int | None = None) -> int | None:
    text = text.strip().lower()
    if text in ("", "all", "none", "default"):
        return empty
    try:
        return int(text)
    except ValueError:
        raise SweepError(f"{label}: {text!r} is not a whole number") from None


def spec_from_fields(values: Mapping[str, str], fa: str, preset_name: str,
                     defaults: Mapping[str, str] | None = None) -> SweepSpec:
    """A SweepSpec from the grid's text fields; raises SweepError with one line.

    ``defaults`` are the placeholders: an empty field takes its value from them."""
    read = effective(values, defaults or {})
    reps = _one_int(read["reps"], "repetitions", 5)
    ncmoe_text = read["ncmoe"].lower()
    spec = SweepSpec(
        name=preset_name,
        prompts=parse_int_list(read["prompts"], "prompt sizes"),
        gens=parse_int_list(read["gens"], "generation sizes"),
        depths=parse_int_list(read["depths"] or "0", "depths"),
        flash_attn={"1": True, "0": False}.get(fa),
        type_k=read["type-k"] or "f16",
        type_v=read["type-v"] or "f16",
        n_gpu_layers=_one_int(read["ngl"], "-ngl"),
        n_cpu_moe=None if ncmoe_text == "auto" else _one_int(read["ncmoe"], "-ncmoe"),
        auto_ncmoe=ncmoe_text == "auto",
        repetitions=5 if reps is None else reps,
    )
    spec.validate()
    return spec
