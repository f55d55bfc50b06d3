"""Server mode: the Setup form's text as a duel, the duel to run, and its display lines.

The live state itself is ``backends.server.DuelState``, folded from the duel's events by
``backends.server.fold`` (a frozen snapshot, the same for a live duel and a journal).
Nothing here imports Textual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from backends.server import ContenderState, DuelSpec, DuelState, LevelSummary, StreamState
from profiles.format import format_rate
from tui.state.format import short

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.models import ModelInfo
    from backends.server import ServedBuild
    from profiles.serving import ServingVerdict

# Server mode's fields: input id -> (label, placeholder: what an empty field means).
SERVE_FIELDS = {
    "concurrency": ("concurrency", "1,2,4"),
    "prompt": ("prompt tokens", "512"),
    "gen": ("gen tokens", "128"),
    "requests": ("requests", "3 per stream"),
    "duration": ("or seconds", "-"),
    "ctx": ("context", "sized"),
    "cache": ("cache types", "-"),
    "slots": ("slots", "highest c"),
}


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a list of whole numbers like 1,2,4") from None
    if not values or min(values) < 1:
        raise ValueError(f"{what}: give whole numbers of 1 or more")
    return values


def spec_from_fields(values: Mapping[str, str], *, gap: bool = True) -> DuelSpec:
    """The duel the form describes; raises ValueError (one line) when it is not one."""
    text = {key: values.get(key, "").strip() or default for key, (_, default) in SERVE_FIELDS.items()}
    gen = _ints(text["gen"], "gen tokens")
    if len(gen) != 1:
        raise ValueError("gen tokens: give one number")
    requests = None if text["requests"] == SERVE_FIELDS["requests"][1] else _ints(
        text["requests"], "requests")[0]
    duration = None
    if text["duration"] != "-":
        try:
            duration = float(text["duration"])
        except ValueError:
            raise ValueError(f"seconds: {text['duration']!r} is not a number") from None
        if duration <= 0:
            raise ValueError("seconds: give a positive number")
    cache = () if text["cache"] == "-" else tuple(t for t in text["cache"].replace(" ", "").split(",") if t)
    spec = DuelSpec(concurrency=_ints(text["concurrency"], "concurrency"),
                    prompts=_ints(text["prompt"], "prompt tokens"), n_gen=gen[0],
                    requests=requests, duration_s=duration, gap=gap,
                    ctx_sizes=() if text["ctx"] == "sized" else _ints(text["ctx"], "context"),
                    cache_types=cache,
                    parallel=() if text["slots"] == "highest c" else _ints(text["slots"], "slots"))
    if problem := spec.problem():
        raise ValueError(problem)
    return spec


@dataclass(frozen=True)
class ServeRequest:
    """A server duel the Setup screen asks for."""

    builds: tuple[BuildInfo, ...]
    model: ModelInfo
    spec: DuelSpec

    def contenders(self) -> list[ServedBuild]:
        from backends.server import ServedBuild

        return [ServedBuild(name=b.name, folder=str(b.folder), env=dict(b.env), backend=b.backend)
                for b in self.builds]

    @property
    def model_path(self) -> Path:
        return Path(self.model.path)


def plan_line(spec: DuelSpec, builds: int) -> str:
    """``server duel: 2 builds × 3 levels (c 1,2,4 · pp512+tg128) · 3 requests per stream``."""
    levels = spec.levels()
    shapes = ", ".join(dict.fromkeys(level.shape for level in levels))
    amount = (f"{spec.duration_s:g} s per level" if spec.duration_s is not None else
              f"{spec.requests} requests per level" if spec.requests else "3 requests per stream")
    gap = " · then llama-bench for the gap" if spec.gap else ""
    concurrency = ",".join(map(str, spec.concurrency))
    server = " · ".join(f"{label} {','.join(map(str, values))}" for label, values in (
        ("ctx", spec.ctx_sizes), ("cache", spec.cache_types), ("slots", spec.parallel)) if values)
    return (f"server duel: {builds} build{'s' if builds != 1 else ''} × {len(levels)} levels "
            f"(c {concurrency} · {shapes}{' · ' + server if server else ''}) · {amount}{gap}")


def ms(seconds: float | None, space: str = " ") -> str:
    """``183 ms``, ``23.8 ms``, ``0.012 ms``: a small model's gaps stay readable."""
    if seconds is None:
        return "-"
    value = seconds * 1000
    digits = 0 if value >= 100 else 1 if value >= 1 else 3
    return f"{value:.{digits}f}{space}ms"


def header_text(state: DuelState) -> str:
    if not state.contenders:
        return "No server duel yet: choose Server on the Setup screen (1) and press r."
    # Levels every contender has finished: each serves every level.
    done = min(len(c.summaries) for c in state.contenders)
    total = len(state.levels)
    status = "finished" if state.finished else "running"
    return f"Server duel · {Path(state.model).name} · {done}/{total} levels · {status}"


def _stream_line(s: StreamState) -> str:
    mark = " " if s.done else ">"
    return f"{mark} s{s.stream} r{s.request} {s.tokens:>4} tok {format_rate(s.decode_tps):>7} t/s"


def level_line(s: LevelSummary) -> str:
    """``c2: 180 t/s, TTFT 12.0ms, ITL 1.1ms (pp64+tg16)`` (or why it failed): the
    level's total rate and medians, narrow enough for a panel at 80 columns."""
    head = f"c{s.level.concurrency}" + (f" {s.level.setting}" if s.level.setting else "")
    if not s.requests:
        return f"{head}: FAILED {short(s.reason or 'no request finished', 60)}"
    errors = f", {s.errors} errors" if s.errors else ""
    errors += f", {s.short} short" if s.short else ""
    return (f"{head}: {format_rate(s.total_tps)} t/s, TTFT {ms(s.ttft_s.p50, '')}, "
            f"ITL {ms(s.itl_s.p50, '')}{errors} ({s.level.shape})")


def level_lines(s: LevelSummary) -> list[str]:
    """The level's line, and its first reason beneath when it lost requests but served."""
    lines = [level_line(s)]
    if s.requests and s.reason:
        lines.append(f"  ! {short(s.reason, 68)}")
    return lines


def panel_lines(c: ContenderState, streams: int = 4, turns: int = 1) -> list[str]:
    """A contender's panel as plain lines: status, live figures, its streams, its levels."""
    where = f" {c.level}" if c.level and c.status in ("starting", "ready", "running") else ""
    if where and c.turn and turns > 1:
        where += f" turn {c.turn}/{turns}"
    status = f"{c.status}{where}" + (f" · port {c.port}" if c.port and c.pid else "")
    lines = [status]
    if c.message and c.status in ("failed", "out", "retrying"):
        lines.append(f"! {short(c.message, 70)}")
    lines += [f"TTFT {ms(c.last_ttft_s)} now · {ms(c.ttft_p50_s)} p50",
              f"ITL {ms(c.itl_s)} · {format_rate(c.stream_tps)} t/s per stream",
              f"{format_rate(c.total_tps)} t/s total · {c.requests} req · {c.errors} err"]
    lines += [_stream_line(s) for s in c.streams[:streams]]
    if len(c.streams) > streams:
        lines.append(f"  … {len(c.streams) - streams} more streams")
    lines += [line for s in c.summaries for line in level_lines(s)]
    return lines


def verdict_lines(verdicts: Sequence[ServingVerdict], failures: Sequence[str] = (),
                  disagreement: str = "") -> str:
    """The serving verdict per level with its figures and the first reason of each build
    that lost requests there, the duel's failures, and where llama-bench disagrees."""
    lines: list[str] = []
    for verdict in verdicts:
        lines += [line.strip() if i else line for i, line in enumerate(verdict.sentence.splitlines())]
        lines += [f"! {reason}" for reason in verdict.failures]
    lines += [f"FAILED {f}" for f in failures]
    if disagreement:
        lines.append(f"Server against llama-bench: {disagreement}")
    return "\n".join(lines)

