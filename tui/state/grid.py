"""The Setup form's grid as text, and the sweep it stands for.

A field left empty counts as the value its placeholder shows: the chosen preset's (so a
cleared field and the placeholder never disagree).
"""

from __future__ import annotations

from collections.abc import Mapping

from backends.sweep import SweepError, SweepSpec
from backends.sweep.adaptive import AUTO, repetition_changes
from backends.sweep.grid import BY_NAME, FORM_FIELDS, UNSET_WORDS, read_fields

# Setup's fields: the grid's own (described once, in ``backends.sweep.grid``) and the
# repetitions. Input id -> label; their placeholders are the preset's values. Labels are
# short so three fields fit a row at 80 columns; a bad field's message uses the same word.
SHORT_LABELS = {"prompts": "prompt", "gens": "generate"}
GRID_FIELDS = {**{f.form_id: SHORT_LABELS.get(f.form_id, f.label) for f in FORM_FIELDS},
               "reps": "reps"}
# What an empty field means, shown as its placeholder when the preset sets none.
EMPTY_WORDS = {f.form_id: f.unset for f in FORM_FIELDS if f.unset}
FA_CHOICES = (("on", "on"), ("off", "off"), ("build default", "default"))


def fields_from_spec(spec: SweepSpec) -> dict[str, str]:
    """The form's text for a sweep ("" where the sweep leaves a setting to llama-bench)."""
    reps = AUTO if spec.adaptive else str(spec.repetitions)  # an adapting preset stays so when edited
    return {**{f.form_id: f.show(spec) for f in FORM_FIELDS}, "reps": reps}


def fa_choice(spec: SweepSpec) -> str:
    """The flash-attention choice for a sweep: on, off or default."""
    return BY_NAME["flash_attn"].show(spec)


def placeholders(spec: SweepSpec) -> dict[str, str]:
    """What each empty field stands for: the preset's value, or the word for "unset"."""
    return {key: value or EMPTY_WORDS.get(key, "") for key, value in fields_from_spec(spec).items()}


def effective(values: Mapping[str, str], defaults: Mapping[str, str]) -> dict[str, str]:
    """The form's values with each empty field read as its placeholder."""
    return {key: (values.get(key, "").strip() or defaults.get(key, "")) for key in GRID_FIELDS}


def spec_from_fields(values: Mapping[str, str], fa: str, preset_name: str,
                     defaults: Mapping[str, str] | None = None) -> SweepSpec:
    """A SweepSpec from the grid's text fields; raises SweepError with one line.

    ``defaults`` are the placeholders: an empty field takes its value from them."""
    read = effective(values, defaults or {})
    changes = read_fields({f.name: read[f.form_id] for f in FORM_FIELDS},
                          lambda setting: GRID_FIELDS[setting.form_id])
    changes.update(BY_NAME["flash_attn"].read(fa, "flash attn"))
    reps = read["reps"].strip().lower()
    if reps not in UNSET_WORDS:  # as the CLI's -r: auto adapts, a number is fixed
        try:
            changes.update(repetition_changes(reps))
        except ValueError:
            raise SweepError(f"reps: {reps!r} is not a whole number or auto") from None
    spec = SweepSpec(name=preset_name).with_changes(**changes)
    spec.validate()  # the form says at once what is wrong
    return spec
