"""``llamaduel profiles ...`` and ``llamaduel recommend FILE...``: saved verdicts on the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backends.journal.journal import RunEvent
    from profiles.importers import ImportedRun
    from profiles.model import Profile
    from profiles.outcome import Recommendation
    from profiles.serving import ServingVerdict
    from profiles.store import ProfileStore
    from tui.cli import CommandError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    profiles = subparsers.add_parser("profiles", help="list, show, compare, export and import saved profiles")
    profiles.add_argument("--store", metavar="PATH", help="profile folder (default: the data dir's profiles)")
    actions = profiles.add_subparsers(dest="profiles_action", metavar="ACTION")
    profiles.set_defaults(func=_missing_action)

    listing = actions.add_parser("list", help="saved profiles, one a line")
    listing.set_defaults(func=cmd_list)

    show = actions.add_parser("show", help="a profile's summary and table")
    show.add_argument("name")
    show.set_defaults(func=cmd_show)

    compare = actions.add_parser("compare", help="two profiles side by side")
    compare.add_argument("first")
    compare.add_argument("second")
    compare.set_defaults(func=cmd_compare)

    export = actions.add_parser("export", help="markdown, CSV, JSON, a launch command or a llama-swap block")
    export.add_argument("name")
    export.add_argument("--format", choices=("md", "csv", "json", "launch", "llama-swap"), default="md")
    export.add_argument("--workload", choices=("short_dense", "long_dense", "moe", "split"),
                        help="only this workload's verdicts, and the workload to launch (default: "
                        "every workload; launch: the first one with a recommendation)")
    export.add_argument("--build", help="launch this build instead of the recommended one (every "
                        "format: the tables and JSON carry its launch command)")
    export.add_argument("--model", metavar="PATH", help="model path for launch (default: the profile's file name)")
    export.add_argument("--context", type=int, help="context size for launch")
    export.set_defaults(func=cmd_export)

    importer = actions.add_parser("import", help="save llama-bench output files as a profile")
    importer.add_argument("files", nargs="+", metavar="FILE")
    importer.add_argument("--name", required=True)
    importer.add_argument("--force", action="store_true", help="replace a profile with the same name")
    importer.add_argument("--one-machine", action="store_true",
                          help="import files whose folders name different hosts as one machine")
    importer.set_defaults(func=cmd_import)

    rename = actions.add_parser("rename", help="rename a profile")
    rename.add_argument("old")
    rename.add_argument("new")
    rename.set_defaults(func=cmd_rename)

    delete = actions.add_parser("delete", help="delete a profile")
    delete.add_argument("name")
    delete.add_argument("--yes", action="store_true", help="do not ask")
    delete.set_defaults(func=cmd_delete)

    recommend = subparsers.add_parser(
        "recommend", help="verdict per workload from llama-bench output or a llamaduel journal")
    recommend.add_argument("files", nargs="+", metavar="FILE")
    recommend.add_argument("--format", choices=("text", "md", "csv", "json"), default="text")
    recommend.add_argument("--long-context", type=int, default=16384, metavar="TOKENS",
                           help="tokens in the cache from which a test counts as long context")
    recommend.add_argument("--tie-pct", type=float, default=3.0,
                           help="a lead smaller than this (percent) is a tie, however significant")
    recommend.add_argument("--one-machine", action="store_true",
                           help="compare files whose folders name different hosts as one machine")
    recommend.set_defaults(func=cmd_recommend)


def _error(message: str) -> CommandError:
    from tui.cli import CommandError

    return CommandError(message)


def _store(options: argparse.Namespace) -> ProfileStore:
    from profiles.store import ProfileStore

    return ProfileStore(options.store) if getattr(options, "store", None) else ProfileStore()


def _missing_action(options: argparse.Namespace) -> int:
    raise _error("profiles needs an action: list, show, compare, export, import, rename or delete")


def _load(options: argparse.Namespace, name: str) -> Profile:
    from profiles.store import ProfileError

    try:
        return _store(options).load(name)
    except ProfileError as error:
        raise _error(str(error)) from None


def cmd_list(options: argparse.Namespace) -> int:
    store = _store(options)
    entries = store.list()
    if not entries:
        print(f"no profiles in {store.root}")
        return 0
    for entry in entries:
        if entry.problem:
            print(f"{entry.name}: unreadable: {entry.problem}")
        else:
            print(f"{entry.name}  {entry.created}  {entry.model}  builds: {', '.join(entry.builds)}")
    return 0


def _print_recommendation(rec: Recommendation, title: str | None = None) -> None:
    from profiles.exporters import to_text

    if title:
        print(title)
    for line in rec.summary:
        print(f"- {line}")
    for line in rec.choose:
        print(f"- {line}")
    print()
    print(to_text(rec), end="")


def cmd_show(options: argparse.Namespace) -> int:
    profile = _load(options, options.name)
    print(f"{profile.name}: {profile.model.file_name or 'unknown model'}, created {profile.created}")
    host = profile.host
    if host.hostname or host.gpu_name:
        print(f"host: {host.hostname} {host.cpu} {host.gpu_name or ''}".rstrip())
    for build in profile.builds:
        number = f" b{build.build_number}" if build.build_number else ""
        print(f"build {build.name}: {build.backend}{number} {build.path or ''}".rstrip())
    if profile.results or not profile.serving_verdicts:
        print(f"{len(profile.results)} results, {len(profile.failures) + len(profile.failure_records)} failures")
    if profile.serving_verdicts:
        _print_serving(profile.serving_verdicts)
    if profile.serving_disagreement:
        print(f"\nServer against llama-bench: {profile.serving_disagreement}")
    from profiles.tuning import tuning_lines

    for line in tuning_lines(profile):
        print(line)
    _print_stability(profile)
    if profile.recommendation is None:
        if not profile.serving_verdicts:
            print("no recommendation (no results)")
        return 0
    print()
    _print_recommendation(profile.recommendation)
    from backends.text import printable
    from profiles.compat import older_verdict_lines

    for line in older_verdict_lines(profile):
        print(printable(line))
    if profile.conditions:
        from backends.text import printable

        print("\nhow these figures were taken:" + "".join(f"\n- {printable(c)}" for c in profile.conditions))
    return 0


def _print_stability(profile: Profile) -> None:
    """The soak's figures and the nightly gate's trend across builds, when there are some."""
    from profiles.gate import trend_lines
    from profiles.soak import soak_lines

    for line in soak_lines(profile.soak):
        print(line)
    if profile.gates:
        print(f"gate history ({len(profile.gates)} runs; last: {profile.gates[-1].get('line')}):")
        for line in trend_lines(profile.gates):
            print(f"  {line}")


def _print_serving(verdicts: Sequence[ServingVerdict]) -> None:
    from profiles.exporters import serving_text

    print()
    print("Serving (llama-server under concurrent load):")
    for verdict in verdicts:
        for line in verdict.sentence.splitlines():
            print(f"- {line.strip()}" if not line.startswith(" ") else f"  {line.strip()}")
        for failure in verdict.failures:
            print(f"  FAILED {failure}")
    print()
    print(serving_text(verdicts), end="")


def cmd_compare(options: argparse.Namespace) -> int:
    first, second = _load(options, options.first), _load(options, options.second)
    rows = [("", first.name, second.name),
            ("model", first.model.file_name, second.model.file_name),
            ("host", first.host.hostname or "-", second.host.hostname or "-"),
            ("gpu", first.host.gpu_name or "-", second.host.gpu_name or "-"),
            ("builds", ", ".join(b.name for b in first.builds), ", ".join(b.name for b in second.builds))]
    workloads = []
    for profile in (first, second):
        for v in (profile.recommendation.verdicts if profile.recommendation else ()):
            if (v.workload, v.phase) not in workloads:
                workloads.append((v.workload, v.phase))
    from profiles.exporters import winner_cell

    for workload, phase in workloads:
        cells = []
        label = None
        for profile in (first, second):
            found = profile.recommendation.verdict(workload, phase) if profile.recommendation else None
            cells.append(winner_cell(found) if found else "-")
            label = label or (found.label if found else None)
        rows.append((label or f"{workload} {phase}", cells[0], cells[1]))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def cmd_export(options: argparse.Namespace) -> int:
    """Every format through one export, so --workload and --build mean the same in all."""
    from profiles import exporters
    from profiles.export_choice import ExportChoice, export

    profile = _load(options, options.name)
    choice = ExportChoice(workload=options.workload, build=options.build,
                          model_path=options.model, context=options.context)
    serving_only = options.format == "md" and profile.recommendation is None and not (
        options.workload or options.build)
    text = ""
    caveats: tuple[str, ...] = ()
    if not (serving_only and profile.serving_verdicts):
        try:
            exported = export(profile, options.format, choice)
        except ValueError as error:
            raise _error(str(error)) from None
        text, caveats = exported.text, exported.caveats
    if options.format == "md" and profile.serving_verdicts and not options.workload:
        title = None if text else profile.name
        text += ("\n" if text else "") + exporters.serving_markdown(profile.serving_verdicts, title=title)
    print(text, end="")
    for caveat in caveats:
        print(f"# caveat: {caveat}", file=sys.stderr)
    return 0


def _import_run(files: list[str], one_machine: bool = False) -> ImportedRun:
    from profiles.importers import ImportProblem, import_files

    for name in files:
        if not Path(name).exists():
            raise _error(f"{name}: no such file")
    try:
        run = import_files(files, one_machine=one_machine)
    except ImportProblem as error:
        raise _error(str(error)) from None
    return run


def cmd_import(options: argparse.Namespace) -> int:
    from profiles.model import profile_from_import, profile_from_journal
    from profiles.store import ProfileError, check_name

    try:
        check_name(options.name)
    except ProfileError as error:
        raise _error(str(error)) from None
    run = _import_run(options.files, getattr(options, "one_machine", False))
    for problem in run.problems:
        print(f"note: {problem}", file=sys.stderr)
    if run.journal:
        profile = profile_from_journal(run.journal, name=options.name)
    elif run.result_count == 0:
        raise _error("no llama-bench results in " + ", ".join(Path(f).name for f in options.files))
    else:
        machines = [m for m in run.machines() if m.result_count]
        if len(machines) > 1:
            raise _error(f"these files come from {len(machines)} machines ("
                         + ", ".join(m.machine or "?" for m in machines)
                         + "); import each machine's files apart, or pass --one-machine")
        profile = profile_from_import(machines[0], name=options.name)
    try:
        path = _store(options).save(profile, overwrite=options.force)
    except ProfileError as error:
        raise _error(str(error) + ("; use --force to replace it" if "exists" in str(error) else "")) from None
    print(f"saved {profile.name}: {len(profile.results)} results, "
          f"{len(profile.failures) + len(profile.failure_records)} failures, "
          f"{len(profile.builds)} builds -> {path}")
    return 0


def cmd_rename(options: argparse.Namespace) -> int:
    from profiles.store import ProfileError

    try:
        path = _store(options).rename(options.old, options.new)
    except ProfileError as error:
        raise _error(str(error)) from None
    print(f"renamed {options.old} -> {options.new} ({path})")
    return 0


def cmd_delete(options: argparse.Namespace) -> int:
    from profiles.store import ProfileError

    store = _store(options)
    if not options.yes:
        if not sys.stdin.isatty():
            raise _error("refusing to delete without --yes when not at a terminal")
        answer = input(f"delete profile {options.name!r}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            from tui.cli import exits

            print("kept")
            return exits.CANCELLED
    try:
        store.delete(options.name)
    except ProfileError as error:
        raise _error(str(error)) from None
    print(f"deleted {options.name}")
    return 0


def cmd_recommend(options: argparse.Namespace) -> int:
    from profiles import exporters
    from profiles.model import profile_from_journal
    from profiles.verdict import VerdictSettings, recommend_run

    settings = VerdictSettings(long_context_tokens=options.long_context, tie_pct=options.tie_pct)
    run = _import_run(options.files, options.one_machine)
    for problem in run.problems:
        print(f"note: {problem}", file=sys.stderr)
    if run.journal:
        profile = profile_from_journal(run.journal, name="journal", settings=settings)
        recs = [profile.recommendation] if profile.recommendation else []
    else:
        recs = [recommend_run(machine.records(), settings) for machine in run.machines() if machine.result_count]
    recs = [r for r in recs if r.verdicts]
    if not recs:
        failed = [f"{name} failed {', '.join(dict.fromkeys(f.test for f in fs))} ({fs[0].reason})"
                  for name, fs in run.failures.items() if fs] if not run.journal else []
        raise _error("no llama-bench results to compare in " + ", ".join(Path(f).name for f in options.files)
                     + (": " + "; ".join(failed) if failed else ""))
    if options.format == "json":
        # One JSON document however many machines: one machine's recommendation, or several
        # under "machines".
        if len(recs) == 1:
            print(exporters.to_json(recs[0]), end="")
        else:
            print(exporters.machines_json(recs), end="")
        return 0
    for n, rec in enumerate(recs):
        if n:
            print()
        title = None
        if len(recs) > 1:
            title = f"== {rec.machine or 'machine'}: {', '.join(rec.builds)} =="
        if options.format == "md":
            print(exporters.to_markdown(rec, title=title), end="")
        elif options.format == "csv":
            print(exporters.to_csv(rec), end="")
        else:
            _print_recommendation(rec, title)
    return _journal_status(run.journal)


def _journal_status(journal: Sequence[RunEvent]) -> int:
    """A journal's verdict exits as its run did (``tui.cli.exits``): a point whose counted
    result is gone is not measured; other input, 0."""
    from backends.journal.damage import missing_results, without_points
    from tui.cli.exits import COMPARED
    from tui.cli.progress import sweep_status

    if not journal:
        return COMPARED
    lost = {m.point.key for m in missing_results(journal)}
    return sweep_status(without_points(journal, lost))[0]
