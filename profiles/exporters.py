"""Turn a recommendation or profile into something to paste or run.

Markdown (the study's table: workload | build A | build B | winner), CSV, JSON, a
llama-server argument list for a workload (a list for running, a shlex-quoted string for
reading), and a llama-swap config block.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from backends.json_types import JsonValue
from backends.text import printable, shell_join
from profiles.format import render_table
from profiles.model import Profile
from profiles.outcome import (
    CLASS_LABELS,
    BuildStability,
    ClassVerdict,
    Energy,
    Recommendation,
    Setting,
    class_label,
)
from profiles.serving import ServingVerdict, serving_rows
from profiles.store import encode
from profiles.wording import bytes_text, margin_text, speed_text

WORKLOADS = tuple(CLASS_LABELS)


def _ts(value: float | None) -> str:
    return speed_text(value)


def winner_cell(v: ClassVerdict) -> str:
    """The verdict in a table cell, in the one confidence vocabulary."""
    if v.models:  # a class over several models: its line says where they agree
        return v.headline + (f"; use {v.recommended}" if v.recommended and v.recommended != v.winner else "")
    if v.status in ("winner", "lead"):
        text = f"{v.winner} ({margin_text(v.ratio)}, {v.confidence})"
        if v.recommended and v.recommended != v.winner:
            text += f"; use {v.recommended}"
        return text
    if v.status == "tie":
        return f"tie (within {abs(v.margin_pct or 0.0):.1f}%{', one run' if v.confidence == 'one run' else ''})"
    if v.status == "only one ran":
        return f"only {v.recommended} ran" if v.recommended else "nothing ran"
    if v.status == "single contender":
        return f"{v.recommended} (only one measured)" if v.recommended else "-"
    if v.status == "by model":
        return v.headline or "by model"
    return f"no clear winner ({v.confidence})"


def _energy_cell(e: Energy | None) -> str:
    if e is None:
        return "-"
    text = f"{e.text}, {bytes_text(e.peak_vram_bytes)}"
    return text + (", throttled" if e.throttled else "")


def table_rows(rec: Recommendation) -> list[list[str]]:
    header = ["workload", *rec.builds, "winner"]
    rows = [header]
    for v in rec.verdicts:
        # A class's per-model rows sit under the class's own row.
        label = f"  on {v.model}" if v.model else v.label
        rows.append([label, *[_ts(v.typical_ts.get(b)) for b in rec.builds], winner_cell(v)])
        energy = {e.contender: e for e in v.energy}
        if any(e.tokens_per_joule is not None or e.note or e.peak_vram_bytes is not None or e.throttled
               for e in v.energy):
            rows.append(["  energy, peak VRAM", *[_energy_cell(energy.get(b)) for b in rec.builds], ""])
    stable = [s for s in rec.stability if s.stable]
    stability_winner = ("all stable" if len(stable) == len(rec.stability)
                        else ", ".join(s.build for s in stable) or "none stable")
    rows.append(["stability", *[_stability_cell(next((s for s in rec.stability if s.build == b), None))
                                for b in rec.builds], stability_winner])
    return rows


def _stability_cell(s: BuildStability | None) -> str:
    """A short cell: the reasons are in the summary lines."""
    if s is None:
        return "-"
    if s.stable:
        return str(s.note)
    parts = [f"ran {s.results}, failed {s.failures}"] if s.failures else []
    if s.correctness in ("suspect", "failed"):
        parts.append(f"output {s.correctness}")
    return "; ".join(parts)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(rec: Recommendation, *, title: str | None = None) -> str:
    rows = table_rows(rec)
    lines = [f"## {printable(title)}", ""] if title else []
    lines.append(render_table(rows[0], [[_md_escape(c) for c in row] for row in rows[1:]], markdown=True))
    lines.append("")
    lines.append(f"Contender columns: typical speed (geometric mean over the tests shared with the leader). "
                 f"Long context means {rec.long_context_tokens:,}+ tokens in the cache; a lead inside "
                 f"{rec.tie_pct:g}% is a tie." + (f" Machine: {printable(rec.machine)}." if rec.machine else ""))
    lines.append("")
    lines.extend(f"- {printable(line)}" for line in rec.summary)
    if rec.choose:
        lines.append("")
        lines.extend(f"- {printable(line)}" for line in rec.choose)
    lines.append("")
    lines.append(f"Rule: {rec.rule} ({rec.pg_policy}.)")
    return "\n".join(lines) + "\n"


def serving_markdown(verdicts: Sequence[ServingVerdict], *, title: str | None = None) -> str:
    """The serving classes of a server duel: a row per concurrency level, then the sentences."""
    rows = serving_rows(verdicts)
    lines = [f"## {printable(title)}", ""] if title else []
    lines += ["### Serving (llama-server under concurrent load)", ""]
    lines.append(render_table(rows[0], [[_md_escape(c) for c in row] for row in rows[1:]], markdown=True))
    lines.append("")
    lines.append("Winner by total tokens/s (every generated token over the level's wall time); confidence "
                 "from the per-request rates. TTFT and ITL are medians, one per contender in the order shown.")
    lines.append("")
    for verdict in verdicts:
        lines.append(f"- {printable(verdict.sentence.splitlines()[0])}")
        lines.extend(f"- FAILED {printable(f)}" for f in verdict.failures)
    return "\n".join(lines) + "\n"


def serving_text(verdicts: Sequence[ServingVerdict]) -> str:
    rows = serving_rows(verdicts)
    return render_table(rows[0], rows[1:]) + "\n"


def to_text(rec: Recommendation) -> str:
    """Plain table for a terminal: columns, no colour, cells escaped."""
    rows = table_rows(rec)
    return render_table(rows[0], rows[1:]) + "\n"


def to_csv(rec: Recommendation) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # "build" holds the contender (build and settings); p_value is the class's corrected q-value;
    # "model" is empty on a class's own row and names the model on its per-model rows.
    writer.writerow(["workload", "phase", "build", "typical_ts", "status", "winner", "recommended",
                     "margin_pct", "p_value", "confidence", "context", "ratio", "tokens_per_joule",
                     "peak_vram_bytes", "throttled", "model", "tokens_per_joule_sd"])
    for v in rec.verdicts:
        energy = {e.contender: e for e in v.energy}
        for b in rec.builds:
            ts = v.typical_ts.get(b)
            e = energy.get(b)
            writer.writerow([v.workload, v.phase, b, "" if ts is None else f"{ts:.6g}", v.status,
                             v.winner or "", v.recommended or "",
                             "" if v.margin_pct is None else f"{v.margin_pct:.3f}",
                             "" if v.p_value is None else f"{v.p_value:.6g}", v.confidence, v.context,
                             "" if v.ratio is None else f"{v.ratio:.4f}",
                             "" if e is None or e.tokens_per_joule is None else f"{e.tokens_per_joule:.6g}",
                             "" if e is None or e.peak_vram_bytes is None else str(e.peak_vram_bytes),
                             "" if e is None or e.throttled is None else str(e.throttled).lower(), v.model,
                             "" if e is None or e.tokens_per_joule_sd is None else f"{e.tokens_per_joule_sd:.6g}"])
    return buffer.getvalue()


def _json_ready(value: JsonValue) -> JsonValue:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        if value.keys() == {"$none"}:
            return None
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def to_json(obj: Profile | Recommendation) -> str:
    return json.dumps(_json_ready(encode(obj)), indent=2, ensure_ascii=False) + "\n"


def machines_json(recs: Sequence[Recommendation]) -> str:
    """Several machines' recommendations as one JSON document: ``{"machines": [...]}``."""
    return json.dumps({"machines": [_json_ready(encode(r)) for r in recs]}, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------
# Launch commands


@dataclass(frozen=True)
class LaunchCommand:
    build: str
    workload: str
    argv: tuple[str, ...]
    caveats: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        """The command to show and to paste: exactly ``argv`` when pasted into a shell."""
        return shell_join(self.argv)


def _server_path(folder: str | None) -> str:
    if not folder:
        return "llama-server"
    return str(Path(folder) / "llama-server")


def launch_command(profile: Profile, workload: str, *, model_path: str | None = None,
                   build: str | None = None, context: int | None = None,
                   host: str = "127.0.0.1", port: int = 8080) -> LaunchCommand:
    """llama-server arguments for a workload, from the recommended build and its settings.

    Raises ValueError (one line) when the profile has no recommendation for the workload
    and no build is named.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; choose one of {', '.join(WORKLOADS)}")
    rec = profile.recommendation
    verdicts = [v for v in (rec.verdicts if rec else ()) if v.workload == workload]
    want = "long" if workload == "long_dense" or (context or 0) >= (rec.long_context_tokens if rec else 16384) else None
    chosen = build or (rec.recommended_build(workload, want) or rec.recommended_build(workload) if rec else None)
    if chosen is None:
        if not verdicts:
            raise ValueError(f"the profile has no results for the {CLASS_LABELS[workload]} workload")
        if any(v.status == "by model" for v in verdicts):
            raise ValueError(f"the build to use for {CLASS_LABELS[workload]} depends on the model; "
                             "name a build with --build")
        raise ValueError(f"no clear winner for {CLASS_LABELS[workload]}; name a build with --build")
    info = rec.contender(chosen) if rec else None
    record = profile.build(info.build if info else chosen)
    if record is None:
        raise ValueError(f"no build named {chosen!r} in the profile")
    settings: Mapping[str, Setting] = dict(info.known_settings) if info else {}
    for phase in ("tg", "pp", "pg"):
        v = next((v for v in verdicts if v.phase == phase), None)
        label = info.label if info else chosen
        if v and label in v.best_settings:
            settings = v.best_settings[label]
            break
    # An imported profile can hold several models: use the one this workload measured.
    measured = next((cell.model for v in verdicts for c in v.comparisons for cell in c.cells), None)
    if measured and not profile.model.path and measured != profile.model.file_name:
        model = model_path or measured
    else:
        model = model_path or profile.model.path or profile.model.file_name or "model.gguf"
    argv: list[str] = [_server_path(record.path), "-m", model, "--host", host, "--port", str(port)]
    fa = settings.get("flash_attn")
    if fa is not None:
        argv += ["-fa", "on" if fa in (1, True, "1", "true", "on") else "off"]
    for key, flag in (("type_k", "-ctk"), ("type_v", "-ctv")):
        if settings.get(key):
            argv += [flag, str(settings[key])]
    ngl = settings.get("n_gpu_layers")
    argv += ["-ngl", str(ngl if isinstance(ngl, int) and ngl >= 0 else 999)]
    ncmoe = settings.get("n_cpu_moe")
    if isinstance(ncmoe, int) and ncmoe > 0:
        argv += ["-ncmoe", str(ncmoe)]
    if settings.get("use_mmap") in (0, False, "0", "false"):
        argv += ["--no-mmap"]
    for key, flag in (("n_batch", "-b"), ("n_ubatch", "-ub")):
        if isinstance(settings.get(key), int):
            argv += [flag, str(settings[key])]
    argv += _device_args(settings, record.rpc)
    argv += ["-c", str(context or _context_for(profile, workload))]
    caveats = tuple(c for v in verdicts for c in v.caveats)
    return LaunchCommand(build=info.label if info else chosen, workload=workload, argv=tuple(argv), caveats=caveats)


def _device_args(settings: Mapping[str, Setting], rpc: Sequence[str]) -> list[str]:
    """llama-server's spelling of the devices and split a contender ran with (llama-bench
    separates devices and the tensor split with '/', llama-server with ',')."""
    argv: list[str] = ["--rpc", ",".join(rpc)] if rpc else []
    devices = str(settings.get("devices") or "")
    if devices and devices.lower() not in ("auto", "-", "?"):
        argv += ["-dev", devices.replace("/", ",")]
    mode = settings.get("split_mode")
    if mode and mode != "layer":
        argv += ["-sm", str(mode)]
    split = str(settings.get("tensor_split") or "")
    if split and any(float(x or 0) for x in split.split("/") if _is_number(x)):
        argv += ["-ts", ",".join(x.rstrip("0").rstrip(".") or "0" for x in split.split("/"))]
    main_gpu = settings.get("main_gpu")
    if isinstance(main_gpu, int) and main_gpu > 0:
        argv += ["-mg", str(main_gpu)]
    return argv


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _context_for(profile: Profile, workload: str) -> int:
    """Enough context for the deepest test measured in this workload (at least 4096)."""
    deepest = 0
    rec = profile.recommendation
    for v in (rec.verdicts if rec else ()):
        if v.workload != workload:
            continue
        for comparison in v.comparisons:
            for cell in comparison.cells:
                deepest = max(deepest, cell.context)
    size = 4096
    while size < deepest:
        size *= 2
    return size


def llama_swap_config(profile: Profile, workloads: Sequence[str] | None = None, *,
                      model_path: str | None = None, build: str | None = None,
                      context: int | None = None) -> str:
    """A llama-swap ``models:`` block, one entry per workload with a recommended build (or
    with ``build``): each entry is ``launch_command``'s. Workloads named in ``workloads``
    must each give one (ValueError saying why not); of all of them, those that can."""
    lines = ["models:"]
    stem = Path(model_path or profile.model.file_name or "model").stem
    for workload in workloads or WORKLOADS:
        try:
            cmd = launch_command(profile, workload, model_path=model_path, build=build,
                                 context=context, port=0)
        except ValueError:
            if workloads:
                raise
            continue
        argv = list(cmd.argv)
        port_at = argv.index("--port")
        argv[port_at + 1] = "${PORT}"
        key = f"{stem}-{workload.replace('_', '-')}"
        # Every value is a JSON string, which is also a YAML double-quoted scalar: a path
        # holding newlines, quotes, '#' or YAML syntax stays data.
        command = " ".join(shlex.quote(a) if a != "${PORT}" else a for a in argv)
        lines.append(f"  {json.dumps(key)}:")
        lines.append(f"    # {printable(class_label(workload, 'short'))}: {printable(cmd.build)}")
        lines.append(f"    cmd: {json.dumps(command)}")
    if len(lines) == 1:
        raise ValueError("the profile recommends no build for any workload")
    return "\n".join(lines) + "\n"
