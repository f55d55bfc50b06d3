"""Thirty recorded A/A runs (one CPU build under two names on a busy machine): no winner."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from backends.journal.sweep import BenchResult
from profiles.records import ProfileResult, RunRecords
from profiles.verdict import recommend_run

RUNS = Path(__file__).parent / "data" / "aa-cpu-busy-2core" / "runs.jsonl"


def _runs() -> list[RunRecords]:
    by_run: dict[int, list[ProfileResult]] = defaultdict(list)
    for line in RUNS.read_text().splitlines():
        item = json.loads(line)
        by_run[item["run"]].append(ProfileResult(item["build"], BenchResult.from_llama_bench(item["record"])))
    return [RunRecords(results=tuple(results)) for _, results in sorted(by_run.items())]


def test_thirty_busy_machine_aa_runs_give_no_winner_and_no_crossover():
    runs = _runs()
    assert len(runs) == 30
    for i, records in enumerate(runs):
        rec = recommend_run(records)
        assert len(rec.verdicts) == 2, i
        for v in rec.verdicts:
            assert v.status in ("tie", "no clear winner") and v.winner is None, (i, v.summary)
        assert rec.crossovers == (), i


def test_the_noise_is_real_stalls_and_shifts():
    """The data are as described: stalled repetitions, and points that shift both ways."""
    runs = _runs()
    shifts = []
    stalls = 0
    for records in runs:
        by_key = {(r.build, r.result.point): r.result for r in records.results}
        for (build, point), result in by_key.items():
            stalls += sum(1 for s in result.samples_ts if s < 0.3 * max(result.samples_ts))
            if build == "cpu-a":
                shifts.append(result.avg_ts / by_key[("cpu-b", point)].avg_ts)
    assert stalls >= 10
    assert sum(1 for s in shifts if s > 1.2) >= 10 and sum(1 for s in shifts if s < 1 / 1.2) >= 10
