"""``llamaduel gate PROFILE --build NAME=PATH``: tonight's build against the one it replaces.

    llamaduel gate mi50-qwen --build rocm=~/llama.cpp/build-nightly/bin --threshold 5

Measures the new build against the build it replaces, running that old build only as
much as the decision needs (``tui.cli.gate_measure``), then the correctness check of the
new build against the reference (its probabilities kept between gates), and ends with one
line on stdout and an exit code cron can act on (``GATE_EXITS``, in the shared table). The
run is added to the profile's gate history; ``llamaduel profiles show`` draws the trend
across builds.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tui.cli import CommandError, exits
from tui.cli.common import add_fallback_option, load_builds, say
from tui.cli.gate_measure import Cancelled, Measured, measure

GATE_EXITS = {"pass": exits.COMPARED, "slower": exits.SLOWER, "wrong": exits.WRONG,
              "failed": exits.UNSTABLE}
# The gate's correctness check reads one chunk of 128 tokens, then 4 where that one is not
# plain (``decided_by_first_chunk``): 4 x 128 are the settings the check's thresholds were
# measured at (``CorrectnessThresholds``); the whole shipped text at 512 took most of a gate's time.
GATE_CONTEXT = 128
GATE_CHUNKS = 4
# The reference's probabilities, kept between nightly gates (backends.correctness.reference_cache):
# the same reference binaries reading the same text answer the same every night.
REFERENCE_CACHE = "reference-logits"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gate", help="check a new build against a profile: pass, slower, wrong or failed",
        description="Run the profile's grid for the new build against the build it replaces "
        "(its saved figures, checked beside it at one point, and every point that looks slower "
        "measured again beside it), check its output against the reference, and end with one "
        "line and an exit code for cron: 0 pass, 5 slower, 6 wrong, 7 failed.")
    parser.add_argument("profile", metavar="PROFILE", help="the profile (name in the store)")
    parser.add_argument("--build", required=True, metavar="NAME=PATH", help="the new build's folder")
    parser.add_argument("--replaces", metavar="NAME",
                        help="the profile's build it replaces (default: the one named NAME, "
                        "else the one of the same backend, else the only one)")
    parser.add_argument("--reference", metavar="NAME",
                        help="the profile's build whose output is right (default: CPU first)")
    parser.add_argument("--threshold", type=float, default=5.0, metavar="PCT",
                        help="slower than this, and significantly, fails the gate (5)")
    parser.add_argument("--model", type=Path, metavar="FILE", help="the model (default: the profile's)")
    parser.add_argument("--store", type=Path, metavar="PATH", help="profile folder")
    parser.add_argument("--run-dir", type=Path, help="where to keep the sweep's journal")
    add_fallback_option(parser)
    parser.set_defaults(func=handle_gate)


def _load(options: argparse.Namespace) -> tuple[Any, Any]:
    from profiles.store import ProfileError, ProfileStore

    store = ProfileStore(options.store)
    try:
        return store, store.load(options.profile)
    except (ProfileError, OSError) as error:
        raise CommandError(str(error)) from None


def _replaced(profile: Any, name: str, backend: str, wanted: str | None) -> Any:
    if wanted is not None:
        record = profile.build(wanted)
        if record is None:
            raise CommandError(f"--replaces {wanted}: the profile has no build of that name")
        return record
    same_backend = [b for b in profile.builds if b.backend and b.backend == backend]
    record = profile.build(name) or (same_backend[0] if len(same_backend) == 1 else None)
    if record is None and len(profile.builds) == 1:
        record = profile.builds[0]
    if record is None:
        raise CommandError("say which of the profile's builds it replaces with --replaces NAME "
                           f"({', '.join(b.name for b in profile.builds)})")
    return record


def _folder(record: Any) -> Path | None:
    if not record.path:
        return None
    path = Path(record.path)
    folder = path.parent if path.is_file() else path
    return folder if folder.is_dir() else None


def handle_gate(options: argparse.Namespace) -> int:
    from backends.sweep import SweepError, SweepSpec
    from tui.cli.common import load_model

    store, profile = _load(options)
    name, sep, path = options.build.partition("=")
    if not sep or not name or not path:
        raise CommandError(f"--build wants NAME=PATH, not {options.build!r}")
    try:
        spec = SweepSpec.from_json(profile.sweep_spec)
        spec.validate()
    except SweepError as error:
        raise CommandError(f"profile {profile.name!r} has no grid to repeat: {error}") from None
    (new,) = load_builds([options.build], allow_cpu_fallback=options.allow_cpu_fallback)
    old_record = _replaced(profile, name, new.backend, options.replaces)
    model_path = options.model or (Path(profile.model.path) if profile.model.path else None)
    if model_path is None:
        raise CommandError("the profile does not say where its model is: give --model FILE")
    model = load_model(model_path.expanduser())
    old_folder = _folder(old_record)
    old_name = old_record.name if old_record.name != name else f"{name}-old"
    contenders = [new] + (load_builds([f"{old_name}={old_folder}"], allow_cpu_fallback=options.allow_cpu_fallback)
                          if old_folder else [])
    try:
        measured = measure(new, contenders[1] if old_folder else None, old_record.name, model, spec,
                           _saved(profile, old_record.name), options.run_dir, options.threshold)
    except Cancelled:
        say("gate cancelled")
        return exits.CANCELLED
    check = _check(profile, contenders, (old_record.name, old_name, old_folder), model, options.reference)
    return _finish(store, profile, new, old_record, measured, check, options.threshold)


def _saved(profile: Any, build: str) -> dict[str, list[float]]:
    saved: dict[str, list[float]] = {}
    for entry in profile.results:
        if entry.build == build:
            saved.setdefault(entry.result.point.name, []).extend(entry.result.samples_ts)
    return saved


def _check(profile: Any, contenders: Sequence[Any], old: tuple[str, str, Path | None], model: Any,
           wanted: str | None) -> dict[str, Any] | None:
    """The correctness check of the new build (the first contender) against the reference
    (the profile's other builds still on this machine, or the replaced one); None when none
    is there. Builds the sweep probed are not probed again."""
    from backends import paths
    from backends.correctness import (
        CheckInputError,
        CorrectnessThresholds,
        check_builds,
        choose_reference,
        decided_by_first_chunk,
        default_context,
    )

    new = contenders[0]

    replaced, old_name, old_folder = old
    present = {r.name: f for r in profile.builds if (f := _folder(r)) and r.name != replaced}
    if old_folder is not None:
        present[old_name] = old_folder
    if wanted is not None and wanted not in present:
        raise CommandError(f"--reference {wanted}: no such build of the profile is on this machine")
    if not present:
        return None
    probed = {b.name: b for b in contenders[1:] if b.name in present}
    # Builds that only give the reference answers: one on the CPU computes them as well.
    others = [f"{n}={f}" for n, f in present.items() if n not in probed]
    fresh = {b.name: b for b in (load_builds(others, needs=None, allow_cpu_fallback=True) if others else [])}
    candidates = [probed.get(n) or fresh[n] for n in present]
    try:
        reference = choose_reference(candidates, wanted)
        say(f"correctness check: {new.name} against {reference.name}")
        context = min(GATE_CONTEXT, default_context(Path(model.path)))
        mine = None
        # One chunk first: a build plainly right (or plainly wrong) is told after it; one near
        # a limit reads the whole text, as the thresholds were measured.
        for chunks in (1, GATE_CHUNKS):
            results = check_builds([reference, new], model.path, reference=reference.name, context=context,
                                   chunks=chunks, reference_cache=paths.cache_dir() / REFERENCE_CACHE)
            mine = next((r for r in results if r.build == new.name), None)
            if mine is None or chunks > 1 or decided_by_first_chunk(mine, CorrectnessThresholds()):
                break
            say(f"correctness check: {new.name} near a limit after one chunk; reading {GATE_CHUNKS}")
    except CheckInputError as error:
        raise CommandError(str(error)) from None
    return mine.to_json() if mine is not None else None


def _finish(store: Any, profile: Any, new: Any, old_record: Any, measured: Measured,
            check: dict[str, Any] | None, threshold: float) -> int:
    import dataclasses

    from profiles.gate import gate_record, judge_gate
    from profiles.model import now_iso
    from profiles.store import ProfileError

    against = measured.against
    outcome = judge_gate(new.name, against, measured.old, measured.new, failures=measured.failures,
                         correctness=check, threshold_pct=threshold)
    label = f"b{new.build_number}" if getattr(new, "build_number", None) else (
        getattr(new, "commit", None) or new.name)
    record = gate_record(outcome, build=new.name, replaces=old_record.name, label=str(label),
                         against=against, when=now_iso())
    try:
        store.save(dataclasses.replace(profile, gates=(*profile.gates, record)))
    except (ProfileError, OSError) as error:
        say(f"the gate's record could not be added to the profile: {error}")
    print(outcome.line, flush=True)
    return GATE_EXITS[outcome.status]
