"""The settings of a llama-bench grid, each described once: its ``SweepSpec`` field, its
llama-bench flag, the command line's option, Setup's label, its help, how text reads into
it and shows from it, and the llama-bench arguments it becomes.

The command line's arguments (``tui/cli/bench.py``), Setup's grid form
(``tui/state/grid.py``) and the argument builder (``backends/sweep/argv.py``) all read
this table, so a new llama-bench flag is one ``GridField`` here and a field in ``SweepSpec``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from backends.sweep.spec import SweepError, SweepSpec, parse_int_list

# What a field's text changes in a SweepSpec (one field, or two for -ncmoe auto).
Changes = dict[str, object]
# Words a field reads as "leave it to llama-bench".
UNSET_WORDS = ("", "all", "none", "default")


class FlagBuild(Protocol):
    """What argument building needs to know of a build: its name and its flags."""

    @property
    def name(self) -> str: ...
    @property
    def flags(self) -> frozenset[str]: ...


def has_flag(build: FlagBuild, *names: str) -> bool:
    return any(name in build.flags for name in names)


@dataclass(frozen=True)
class GridField:
    """One setting of the grid, from the user's text to llama-bench's argument list."""

    name: str  # the SweepSpec field
    flag: str  # llama-bench's flag, also the command line's short option ("" for none)
    option: str  # the command line's long option
    help: str
    read: Callable[[str, str], Changes]  # (text, label) -> SweepSpec changes; SweepError (one line)
    show: Callable[[SweepSpec], str]  # the text for a spec; "" where llama-bench decides
    argv: Callable[[FlagBuild, SweepSpec], list[str]] | None = None  # None: not a setting argument
    label: str = ""  # Setup's label; "" when Setup's form does not show it
    form_id: str = ""  # Setup's input id (``field-<form_id>``)
    unset: str = ""  # Setup's placeholder when the preset leaves the field to llama-bench
    choices: tuple[str, ...] = ()  # the only texts the command line accepts, when fixed

    @property
    def default(self) -> object:
        """SweepSpec's own default for the field."""
        found = next(f for f in dataclasses.fields(SweepSpec) if f.name == self.name)
        return found.default

    @property
    def dest(self) -> str:
        """The command line's attribute (argparse's name for the long option)."""
        return self.option.lstrip("-").replace("-", "_")


def _ints_text(values: tuple[int, ...]) -> str:
    return ",".join(f"{v // 1024}k" if v and v % 1024 == 0 else str(v) for v in values)


def _one_int(text: str, label: str) -> int | None:
    text = text.strip().lower()
    if text in UNSET_WORDS:
        return None
    try:
        return int(text)
    except ValueError:
        raise SweepError(f"{label}: {text!r} is not a whole number") from None


def _optional_text(value: object) -> str:
    return "" if value is None else str(value)


def _switch_text(value: bool | None) -> str:
    return {True: "on", False: "off", None: "default"}[value]


def _read_switch(name: str) -> Callable[[str, str], Changes]:
    def read(text: str, label: str) -> Changes:
        word = text.strip().lower()
        values = {"on": True, "1": True, "off": False, "0": False, "default": None, "": None}
        if word not in values:
            raise SweepError(f"{label}: {text!r} is not on, off or default")
        return {name: values[word]}
    return read


def _read_list(name: str, empty: str = "") -> Callable[[str, str], Changes]:
    return lambda text, label: {name: parse_int_list(text or empty, label)}


def _read_int(name: str) -> Callable[[str, str], Changes]:
    return lambda text, label: {name: _one_int(text, label)}


def _read_cache(name: str) -> Callable[[str, str], Changes]:
    return lambda text, label: {name: text.strip() or "f16"}


def _read_ncmoe(text: str, label: str) -> Changes:
    if text.strip().lower() == "auto":
        return {"n_cpu_moe": None, "auto_ncmoe": True}
    return {"n_cpu_moe": _one_int(text, label), "auto_ncmoe": False}


def _show_ncmoe(spec: SweepSpec) -> str:
    return "auto" if spec.auto_ncmoe else _optional_text(spec.n_cpu_moe)


def _valued(flag: str, name: str) -> Callable[[FlagBuild, SweepSpec], list[str]]:
    def argv(build: FlagBuild, spec: SweepSpec) -> list[str]:
        value = getattr(spec, name)
        return [] if value is None else [flag, str(value)]
    return argv


def _fa_argv(build: FlagBuild, spec: SweepSpec) -> list[str]:
    return [] if spec.flash_attn is None else ["-fa", "1" if spec.flash_attn else "0"]


def _ncmoe_argv(build: FlagBuild, spec: SweepSpec) -> list[str]:
    if not spec.n_cpu_moe:
        return []
    if not has_flag(build, "-ncmoe", "--n-cpu-moe"):
        raise SweepError(f"build {build.name!r} has no -ncmoe: it cannot split MoE experts")
    return ["-ncmoe", str(spec.n_cpu_moe)]


def _mmap_argv(build: FlagBuild, spec: SweepSpec) -> list[str]:
    if spec.mmap is None:
        return []
    # Newer builds replaced -mmp 0|1 with -lm/--load-mode none|mmap.
    if has_flag(build, "-lm", "--load-mode"):
        return ["-lm", "mmap" if spec.mmap else "none"]
    if has_flag(build, "-mmp", "--mmap"):
        return ["-mmp", "1" if spec.mmap else "0"]
    raise SweepError(f"build {build.name!r} has neither -lm nor -mmp: cannot set the load mode")


def _show(name: str, text: Callable[[object], str] = _optional_text) -> Callable[[SweepSpec], str]:
    return lambda spec: text(getattr(spec, name))


def _show_ints(name: str) -> Callable[[SweepSpec], str]:
    return lambda spec: _ints_text(getattr(spec, name))


# In llama-bench's argument order: the points' lists first (argv.py places them), then the
# settings in the order they are passed.
GRID: tuple[GridField, ...] = (
    GridField("prompts", "-p", "--prompts", "prompt sizes, e.g. 512 or 128,512",
              _read_list("prompts"), _show_ints("prompts"), label="prompt sizes", form_id="prompts"),
    GridField("gens", "-n", "--gens", "generation sizes, e.g. 128",
              _read_list("gens"), _show_ints("gens"), label="generation sizes", form_id="gens"),
    GridField("depths", "-d", "--depths", "context depths, e.g. 0,4k,16k",
              _read_list("depths", "0"), _show_ints("depths"), label="depths", form_id="depths"),
    GridField("flash_attn", "-fa", "--flash-attn", "flash attention: on, off or the build's default",
              _read_switch("flash_attn"), lambda spec: _switch_text(spec.flash_attn), _fa_argv,
              choices=("on", "off", "default")),
    GridField("type_k", "-ctk", "--cache-type-k", "K cache type (f16, q8_0, ...)",
              _read_cache("type_k"), _show("type_k"), lambda build, spec: ["-ctk", spec.type_k],
              label="K cache", form_id="type-k"),
    GridField("type_v", "-ctv", "--cache-type-v", "V cache type (f16, q8_0, ...)",
              _read_cache("type_v"), _show("type_v"), lambda build, spec: ["-ctv", spec.type_v],
              label="V cache", form_id="type-v"),
    GridField("n_gpu_layers", "-ngl", "--n-gpu-layers", "layers on the GPU (default: all)",
              _read_int("n_gpu_layers"), _show("n_gpu_layers"), _valued("-ngl", "n_gpu_layers"),
              label="-ngl", form_id="ngl", unset="all"),
    GridField("n_cpu_moe", "-ncmoe", "--n-cpu-moe", "MoE expert layers kept on the CPU, or auto (from the fit)",
              _read_ncmoe, _show_ncmoe, _ncmoe_argv, label="-ncmoe", form_id="ncmoe", unset="none"),
    GridField("mmap", "", "--mmap", "load the model with mmap: on, off or the build's default",
              _read_switch("mmap"), lambda spec: _switch_text(spec.mmap), _mmap_argv,
              choices=("on", "off", "default")),
    GridField("threads", "-t", "--threads", "CPU threads", _read_int("threads"), _show("threads"),
              _valued("-t", "threads")),
    GridField("batch", "-b", "--batch", "logical batch size", _read_int("batch"), _show("batch"),
              _valued("-b", "batch")),
    GridField("ubatch", "-ub", "--ubatch", "physical batch size", _read_int("ubatch"), _show("ubatch"),
              _valued("-ub", "ubatch")),
)
BY_NAME: Mapping[str, GridField] = {f.name: f for f in GRID}
FORM_FIELDS: tuple[GridField, ...] = tuple(f for f in GRID if f.form_id)


def setting_args(build: FlagBuild, spec: SweepSpec) -> list[str]:
    """llama-bench's arguments for the grid's settings, mapped onto what ``build`` has."""
    argv: list[str] = []
    for grid_field in GRID:
        if grid_field.argv is not None:
            argv += grid_field.argv(build, spec)
    return argv


def read_fields(texts: Mapping[str, str], label_of: Callable[[GridField], str]) -> Changes:
    """SweepSpec changes from text per field name; SweepError (one line) names the bad one."""
    changes: Changes = {}
    for name, text in texts.items():
        grid_field = BY_NAME[name]
        changes.update(grid_field.read(text, label_of(grid_field)))
    return changes

