"""Soak mode: the Setup form's text as a soak, the soak to run, the live figures folded from
its events, and their display lines.

``fold`` is pure: the same frozen ``SoakView`` from a live soak's events as from its journal.
Every string from a tool (a crash's log line, an HTTP error) is escaped where it becomes
markup. Nothing here imports Textual.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from backends.journal.soak import (
    SoakCrashed,
    SoakFinished,
    SoakHang,
    SoakHttpError,
    SoakProbe,
    SoakServerUp,
    SoakStarted,
    SoakStartFailed,
    SoakWindow,
)
from backends.soak.spec import SoakSpec, duration_words, parse_duration
from profiles.format import format_rate

if TYPE_CHECKING:
    from pathlib import Path

    from backends.builds import BuildInfo
    from backends.models import ModelInfo
    from backends.soak import SoakBuild, Unfinished
    from profiles.store import ProfileStore

# Soak mode's fields: input id -> (label, placeholder: what an empty field means).
SOAK_FIELDS = {
    "duration": ("duration", "1h"),
    "reference": ("reference", "CPU first"),
    "threads": ("threads", "all cores"),
    "profile": ("save into", "no profile"),
}


@dataclass(frozen=True)
class SoakRequest:
    """A soak the Setup screen asks for; ``profile``: the saved profile its figures join."""

    builds: tuple[BuildInfo, ...]
    model: ModelInfo
    spec: SoakSpec
    reference: str | None = None
    profile: str | None = None
    require_stable: bool = False

    def soak_builds(self) -> list[SoakBuild]:
        from backends.soak import SoakBuild

        return [SoakBuild(b.name, str(b.folder), dict(b.env), b.backend) for b in self.builds]


def spec_from_fields(values: Mapping[str, str]) -> SoakSpec:
    """The soak the form describes; raises ValueError (one line) when it is not one.

    Windows and probes come every tenth of the soak (at most every minute and every 30 s),
    so a soak of minutes still shows figures while it runs."""
    from backends.server import ServerSettings

    duration = parse_duration(values.get("duration", "").strip() or SOAK_FIELDS["duration"][1])
    threads_text = values.get("threads", "").strip()
    threads = None
    if threads_text:
        if not threads_text.isdigit() or int(threads_text) < 1:
            raise ValueError(f"threads: {threads_text!r} is not a whole number of 1 or more")
        threads = int(threads_text)
    spec = SoakSpec(duration_s=duration, window_s=min(60.0, max(2.0, duration / 10)),
                    probe_every_s=min(30.0, max(1.0, duration / 10)),
                    settings=ServerSettings(threads=threads))
    if problem := spec.problem():
        raise ValueError(problem)
    return spec


def reference_problem(reference: str, chosen: frozenset[str]) -> str | None:
    if reference and reference not in chosen:
        return f"reference: {reference!r} is not a chosen build ({', '.join(sorted(chosen))})"
    return None


def plan_line(spec: SoakSpec, builds: int, reference: str | None) -> str:
    ref = reference or "the most trusted build"
    return (f"soak: {builds} build{'s' if builds != 1 else ''} × {duration_words(spec.duration_s)}, "
            f"answers checked against {ref}")


@dataclass(frozen=True)
class BuildView:
    """One build's live figures."""

    name: str
    state: str = "waiting"  # waiting, up, down, failed
    up_at_s: float | None = None
    requests: int = 0
    crashes: int = 0
    last_error: str = ""
    hangs: int = 0
    http_errors: int = 0
    probes: int = 0
    wrong: int = 0
    restarts: int = 0
    start_failures: int = 0
    rss_start: int | None = None  # resident memory at this server's first window
    rss_now: int | None = None
    rss_growth: int | None = None  # the most any one server's memory grew (as the summary says)
    first_tps: float | None = None
    last_tps: float | None = None


@dataclass(frozen=True)
class SoakView:
    """The whole soak as the screen shows it."""

    builds: tuple[BuildView, ...] = ()
    reference: str = ""
    journal: str | None = None
    duration_s: float = 0.0
    at_s: float = 0.0
    status: str = "idle"  # idle, references, running, finished, cancelled, stopped
    problem: str | None = None

    def build(self, name: str) -> BuildView | None:
        return next((b for b in self.builds if b.name == name), None)


def _on_build(view: SoakView, name: str, **changes: Any) -> SoakView:
    builds = tuple(dataclasses.replace(b, **changes) if b.name == name else b for b in view.builds)
    return dataclasses.replace(view, builds=builds)


def _window(build: BuildView, event: SoakWindow) -> dict[str, Any]:
    tps = event.gen_tps
    start = build.rss_start if build.rss_start is not None else event.rss_bytes
    now = event.rss_bytes if event.rss_bytes is not None else build.rss_now
    growth = build.rss_growth
    if start is not None and now is not None:
        growth = max(growth if growth is not None else now - start, now - start)
    return {"requests": build.requests + event.requests, "rss_start": start, "rss_now": now,
            "rss_growth": growth,
            "first_tps": build.first_tps if build.first_tps is not None else tps,
            "last_tps": tps if tps is not None else build.last_tps}


def fold(view: SoakView, event: object) -> SoakView:
    """The view after ``event``; events of other kinds leave it as it is."""
    at = float(getattr(event, "at_s", view.at_s) or 0.0)
    view = dataclasses.replace(view, at_s=max(view.at_s, at))
    if isinstance(event, SoakStarted):
        old = {b.name: b for b in view.builds}
        duration = float(event.settings.get("duration_s") or 0.0)
        return dataclasses.replace(
            view, builds=tuple(old.get(b.name, BuildView(b.name)) for b in event.builds),
            reference=event.reference, journal=event.journal, status="references",
            duration_s=duration, problem=None)
    build = view.build(str(getattr(event, "build", "")))
    if isinstance(event, SoakFinished):
        status = "cancelled" if event.cancelled else "stopped" if event.problem else "finished"
        return dataclasses.replace(view, status=status, problem=event.problem)
    if build is None:
        return view
    if isinstance(event, SoakServerUp):
        view = dataclasses.replace(view, status="running")
        return _on_build(view, build.name, state="up", up_at_s=event.at_s,
                         restarts=build.restarts + event.restart, rss_start=None, rss_now=None)
    if isinstance(event, SoakCrashed):
        return _on_build(view, build.name, state="down", up_at_s=None, crashes=build.crashes + 1,
                         last_error=event.reason)
    if isinstance(event, SoakHang):
        return _on_build(view, build.name, state="down", up_at_s=None, hangs=build.hangs + 1)
    if isinstance(event, SoakStartFailed):
        return _on_build(view, build.name, state="failed", up_at_s=None,
                         start_failures=build.start_failures + 1, last_error=event.reason)
    if isinstance(event, SoakHttpError):
        return _on_build(view, build.name, http_errors=build.http_errors + 1)
    if isinstance(event, SoakProbe):  # a wrong answer is a probe beyond the thresholds
        return _on_build(view, build.name, probes=build.probes + 1, wrong=build.wrong + (not event.ok))
    if isinstance(event, SoakWindow):
        return _on_build(view, build.name, **_window(build, event))
    return view


def _minutes(seconds: float) -> str:
    seconds = max(0.0, seconds)
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _bytes(count: int | None) -> str:
    if count is None:
        return "-"
    sign = "+" if count >= 0 else "-"
    return f"{sign}{abs(count) / 2**20:.1f} MiB"


def _tps(value: float | None) -> str:
    return format_rate(value) if value else "-"


def header_text(view: SoakView, now_s: float | None = None) -> str:
    """``now_s``: the soak's clock now, where the screen counts on between events."""
    if view.status == "idle":
        return "No soak yet: choose soak mode on Setup (m) and start it (r)."
    now = min(view.duration_s, max(view.at_s, now_s or 0.0))
    done = f"{_minutes(now)} of {_minutes(view.duration_s)}"
    what = {"references": "taking the reference answers", "running": "running"}.get(
        view.status, view.status)
    return escape(f"Soak · {done} · reference {view.reference} · {what}")


def build_lines(build: BuildView, view: SoakView, now_s: float | None = None) -> list[str]:
    """The build's figures, each line under 78 columns; tool text escaped."""
    now = max(view.at_s, now_s or 0.0)
    uptime = _minutes(now - build.up_at_s) if build.up_at_s is not None else build.state
    bad = build.crashes or build.hangs or build.wrong or build.start_failures
    mark = "[b red]TROUBLE[/]" if bad else "[b green]ok[/]"
    lines = [f"[b]{escape(build.name)}[/] {mark}  up {uptime}  requests {build.requests}  "
             f"restarts {build.restarts}",
             f"crashes {build.crashes}  hangs {build.hangs}  HTTP errors {build.http_errors}  "
             f"probes {build.probes}  wrong {build.wrong}",
             f"memory {_bytes(build.rss_growth)}  t/s now {_tps(build.last_tps)} "
             f"vs first {_tps(build.first_tps)}"]
    if build.last_error:
        lines.append(f"last error: {escape(build.last_error[:200])}")
    return lines


def footer_text(view: SoakView) -> str:
    lines = [f"journal: {escape(view.journal)}"] if view.journal else []
    if view.problem:
        lines.append(f"stopped: {escape(view.problem)}")
    return "\n".join(lines)


def resume_line(unfinished: Unfinished | None) -> str:
    """What the screen offers for a soak that stopped with time left ("" for none)."""
    if unfinished is None:
        return ""
    return escape(f"A soak of {', '.join(unfinished.builds)} stopped at {_minutes(unfinished.soaked_s)} "
                  f"of {_minutes(unfinished.duration_s)}: u resumes it for the time it had left.")


def save_soak(store: ProfileStore, name: str, journal: Path, *, require_stable: bool) -> Path:
    """Add the soak journalled at ``journal`` to the saved profile ``name`` (what ``llamaduel
    soak --save NAME [--require-stable]`` does); raises ValueError (one line) when it cannot."""
    from backends.journal.journal import read_journal
    from backends.soak import summarize
    from profiles.soak import with_soak
    from profiles.store import ProfileError

    summary = summarize(read_journal(journal))
    if summary is None:
        raise ValueError(f"{journal} holds no soak")
    try:
        return store.save(with_soak(store.load(name), summary.to_json(),
                                    require_stable=require_stable))
    except (ProfileError, OSError) as error:
        raise ValueError(f"the soak could not be saved into profile {name!r}: {error}") from None
