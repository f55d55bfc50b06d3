"""One export, any format: every format honours the same workload and build choice.

``--workload W`` keeps W's verdicts (in the tables) and picks the workload to launch;
``--build B`` launches B instead of the recommended build. The choice is checked once, the
same way for every format, so a choice that works for one format works for all of them:
the tables and JSON carry the launch command of the chosen build beside W's verdicts, and
the launch command and the llama-swap block are that same command.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, replace

from profiles import exporters
from profiles.model import Profile
from profiles.outcome import CLASS_LABELS, Recommendation

FORMATS = ("md", "csv", "json", "launch", "llama-swap")


@dataclass(frozen=True)
class ExportChoice:
    workload: str | None = None
    build: str | None = None
    model_path: str | None = None
    context: int | None = None


@dataclass(frozen=True)
class Exported:
    text: str
    caveats: tuple[str, ...] = ()


def export(profile: Profile, fmt: str, choice: ExportChoice = ExportChoice()) -> Exported:
    """``profile`` in ``fmt``; ValueError (one line) for a choice the profile cannot meet."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    _check(profile, choice)
    rec = profile.recommendation
    launch = _launch(profile, choice) if choice.build or fmt in ("launch", "llama-swap") else None
    if fmt == "launch":
        assert launch is not None
        return Exported(launch.display + "\n", launch.caveats)
    if fmt == "llama-swap":
        workloads = [choice.workload] if choice.workload else None
        return Exported(exporters.llama_swap_config(profile, workloads, model_path=choice.model_path,
                                                    build=choice.build, context=choice.context))
    shown = _only(rec, choice.workload) if rec is not None else None
    if fmt == "json":
        data = json.loads(exporters.to_json(profile if shown is rec else replace(profile, recommendation=shown)))
        if launch is not None:
            data["launch"] = {"workload": launch.workload, "build": launch.build, "argv": list(launch.argv)}
        return Exported(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    if shown is None:
        raise ValueError(f"profile {profile.name!r} has no recommendation to export")
    if fmt == "csv":
        return Exported(_csv(shown, launch))
    text = exporters.to_markdown(shown, title=profile.name)
    if launch is not None:
        text += (f"\nLaunch {launch.build} for {CLASS_LABELS[launch.workload]}: "
                 f"`{launch.display}`\n")
    return Exported(text)


def _check(profile: Profile, choice: ExportChoice) -> None:
    if choice.workload is not None and choice.workload not in exporters.WORKLOADS:
        raise ValueError(f"unknown workload {choice.workload!r}; choose one of "
                         f"{', '.join(exporters.WORKLOADS)}")
    rec = profile.recommendation
    if choice.workload and not any(v.workload == choice.workload for v in (rec.verdicts if rec else ())):
        raise ValueError(f"the profile has no results for the {CLASS_LABELS[choice.workload]} workload")
    if choice.build and profile.build(choice.build) is None and not (rec and rec.contender(choice.build)):
        names = ", ".join(b.name for b in profile.builds)
        raise ValueError(f"no build named {choice.build!r} in the profile (it has {names})")


def _launch(profile: Profile, choice: ExportChoice) -> exporters.LaunchCommand:
    rec = profile.recommendation
    workload = choice.workload or next(
        (w for w in exporters.WORKLOADS if rec and (choice.build or rec.recommended_build(w))
         and any(v.workload == w for v in rec.verdicts)), None)
    if workload is None:
        raise ValueError("the profile recommends no build for any workload; pass --workload and --build")
    return exporters.launch_command(profile, workload, model_path=choice.model_path,
                                    build=choice.build, context=choice.context)


def _only(rec: Recommendation, workload: str | None) -> Recommendation:
    if workload is None:
        return rec
    return replace(rec, verdicts=tuple(v for v in rec.verdicts if v.workload == workload))


def _csv(rec: Recommendation, launch: exporters.LaunchCommand | None) -> str:
    """The verdict CSV; with a chosen build, a launch_command column on its rows."""
    text = exporters.to_csv(rec)
    if launch is None:
        return text
    rows = list(csv.reader(io.StringIO(text)))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*rows[0], "launch_command"])
    for row in rows[1:]:
        chosen = row[0] == launch.workload and row[2] == launch.build
        writer.writerow([*row, launch.display if chosen else ""])
    return out.getvalue()
