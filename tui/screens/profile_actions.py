"""Turning runs into profiles and back, exporting them, and their launch commands.

Display-side glue over ``profiles``: no widgets here, so tests call it directly.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from backends.journal.sweep import ResultReceived, SweepStarted
from tui.state.run import FINISHED, BuildProgress, RunState, check_line

if TYPE_CHECKING:
    from backends.builds import BuildInfo
    from backends.journal.journal import RunEvent
    from backends.models import ModelInfo
    from profiles.exporters import LaunchCommand
    from profiles.model import Profile


def state_from_profile(profile: Profile) -> RunState:
    """A finished RunState showing a saved profile's results (and its check's, if any)."""
    from backends.correctness import CorrectnessResult

    checks = {name: CorrectnessResult.from_json(data)
              for name, data in (profile.correctness or {}).items()}
    by_build = profile.results_by_build()
    failures = profile.failures_by_build()
    names = list(dict.fromkeys([*(b.name for b in profile.builds), *by_build, *failures]))
    points = list(dict.fromkeys(
        [r.point for results in by_build.values() for r in results]
        + [f.point for fs in failures.values() for f in fs]))
    points.sort(key=lambda p: (p.depth, p.kind != "pp", p.n_prompt, p.n_gen))
    return RunState(
        run_id=profile.name, model=profile.model.file_name or "model",
        builds=tuple(BuildProgress(name, results=tuple(by_build.get(name, ())),
                                   failures=tuple(failures.get(name, ())),
                                   check=check_line(checks[name]) if name in checks else "")
                     for name in names),
        points=tuple(points), spec=dict(profile.sweep_spec), status=FINISHED,
        correctness=tuple(checks.values()),
    )


def records_of(state: RunState) -> tuple[RunEvent, ...]:
    """The run's records, kept as they passed (a live run, a replayed journal); for a state
    that never saw a sweep start (a saved profile's), rebuilt from what it shows."""
    if any(isinstance(record, SweepStarted) for record in state.records):
        return state.records
    records: list[RunEvent] = [SweepStarted(
        run_id=state.run_id, run_dir=state.run_dir, model=state.model,
        builds=tuple(b.name for b in state.builds), points=state.points, spec=dict(state.spec))]
    for build in state.builds:
        records += [ResultReceived(build=build.name, result=r) for r in build.results]
        records += list(build.failures)
    return tuple(records)


def default_profile_name(state: RunState) -> str:
    """``gemma-3-270m-q4_k_m-cpu-vs-vulkan``: no spaces, nothing a shell must quote."""
    stem = Path(state.model).stem or "run"
    builds = "-vs-".join(b.name for b in state.builds)
    name = re.sub(r"[^A-Za-z0-9._+@-]+", "-", f"{stem}-{builds}")
    return re.sub(r"-{2,}", "-", name)[:100].strip("-") or "run"


def has_server(command: LaunchCommand) -> bool:
    """True when the launch command's llama-server is there to run."""
    import shutil

    server = Path(command.argv[0])
    return server.is_file() if server.parent != Path(".") else shutil.which(str(server)) is not None


def profile_from_state(state: RunState, name: str, *, builds: Sequence[BuildInfo] | None = None,
                       model_info: ModelInfo | None = None) -> Profile:
    from profiles.model import profile_from_journal

    return profile_from_journal(records_of(state), name=name, builds=builds,
                                model_info=model_info, correctness=state.correctness_by_build())


def export_profile(profile: Profile, folder: Path) -> list[Path]:
    """Markdown, CSV and JSON beside each other; returns the files written."""
    from profiles.exporters import to_csv, to_json, to_markdown
    from profiles.store import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9._+@-]", "_", profile.name)
    written = []
    if profile.recommendation is not None:
        for suffix, text in ((".md", to_markdown(profile.recommendation, title=profile.name)),
                             (".csv", to_csv(profile.recommendation))):
            atomic_write_text(folder / f"{stem}{suffix}", text)
            written.append(folder / f"{stem}{suffix}")
    atomic_write_text(folder / f"{stem}.json", to_json(profile))
    written.append(folder / f"{stem}.json")
    return written


def launch_commands(profile: Profile, model_path: str | None = None,
                    ) -> list[tuple[str, LaunchCommand]]:
    """(workload label, LaunchCommand) for every workload with a recommended build."""
    from profiles.exporters import WORKLOADS, launch_command
    from profiles.verdict import CLASS_LABELS

    commands = []
    for workload in WORKLOADS:
        try:
            commands.append((CLASS_LABELS[workload],
                             launch_command(profile, workload, model_path=model_path)))
        except ValueError:
            continue
    return commands


def model_path_of(state: RunState) -> str | None:
    return state.model if state.model and Path(state.model).is_absolute() else None


def typed_paths(text: str) -> list[Path]:
    """Files typed into a field: one path as typed when it names a file (spaces, '#', '?' and
    '%' included), else shell words, so quoted names with spaces work too."""
    whole = Path(text.strip()).expanduser()
    if text.strip() and whole.exists():
        return [whole]
    try:
        words = shlex.split(text)
    except ValueError:  # an unclosed quote: take the words as they are
        words = text.split()
    return [Path(word).expanduser() for word in words]
