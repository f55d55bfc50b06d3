"""Verdicts from tables that print only ``mean ± sd``, with no repetition count.

The two gaps below are the figures of published markdown reports that are not in our
collection (their authors' pages print the tables, not the files); the tables here are
llama-bench's own markdown with those figures, so the importer reads them as it reads any
published table. The A/A case uses our recorded busy-machine runs, summarised the way
llama-bench's markdown prints them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from backends import stats
from backends.journal.sweep import BenchResult
from profiles.importers import import_files
from profiles.records import ProfileResult, RunRecords
from profiles.verdict import recommend_run

HEADER = ("| model                          |       size |     params | backend    | ngl | fa |            test |"
          "                  t/s |\n"
          "| ------------------------------ | ---------: | ---------: | ---------- | --: | -: | --------------: |"
          " -------------------: |\n")
MODEL = "| qwen3moe 30B.A3B Q4_K - Medium |  16.49 GiB |    30.53 B |"


def _table(backend: str, rows: list[tuple[str, str]]) -> str:
    body = "".join(f"{MODEL} {backend:<10} |  99 |  1 | {test:>15} | {cell:>20} |\n" for test, cell in rows)
    return HEADER + body + "\nbuild: 1a68ec937 (9193)\n"


def _recommend(tmp_path: Path, rocm: list[tuple[str, str]], vulkan: list[tuple[str, str]]):
    (tmp_path / "rocm.md").write_text(_table("ROCm", rocm))
    (tmp_path / "vulkan.md").write_text(_table("Vulkan", vulkan))
    (machine,) = import_files([tmp_path / "rocm.md", tmp_path / "vulkan.md"]).machines()
    return recommend_run(machine.records())


def test_samuelson_bound_is_at_most_2_85_sd_for_ten_repetitions():
    assert stats.max_deviation(None) == stats.max_deviation(10) == 9 / 10 ** 0.5
    assert round(stats.max_deviation(None), 2) == 2.85
    assert stats.max_deviation(5) < stats.max_deviation(None)  # a stated count is used as stated


def test_means_further_apart_than_any_count_allows_are_decisive(tmp_path):
    # 61.2 ± 0.1 against 44.9 ± 0.8: x1.36, the means 18 spreads apart. Assuming two repetitions
    # and one run's wobble called this "no clear winner (... low confidence)".
    rec = _recommend(tmp_path, [("tg128", "61.20 ± 0.10")], [("tg128", "44.90 ± 0.80")])
    v = rec.verdict("moe", "tg", "short")
    assert (v.status, v.winner, v.confidence) == ("winner", "ROCm", "decisive"), v.summary
    assert v.summary == ("MoE, short context — generation: ROCm is +36% faster than Vulkan on every repetition "
                         "the printed means ± sd allow (decisive).")
    assert v.comparisons[0].cells[0].separated and v.comparisons[0].bounded_for == 1


def test_a_lead_that_reverses_with_depth_is_a_crossover(tmp_path):
    # 1402 ± 2 against 1271 ± 11 at depth 0, the order reversed at depth 8192.
    rec = _recommend(tmp_path, [("pp2048", "1,402.17 ± 2.03"), ("pp2048 @ d8192", "905.31 ± 9.50")],
                     [("pp2048", "1,271.40 ± 11.02"), ("pp2048 @ d8192", "1,010.84 ± 4.41")])
    (cross,) = rec.crossovers
    assert (cross.leader_before, cross.leader_after, cross.low, cross.high, cross.tested) == (
        "ROCm", "Vulkan", 2048, 10240, True)
    v = rec.verdict("moe", "pp", "short")
    assert v.status == "no clear winner" and v.crossovers == (cross,)
    # The class says where the lead changes, in the crossover's own words.
    assert "(the lead changes: ROCm to Vulkan between 2,048 and 10,240 tokens of context)" in v.summary
    assert cross.sentence in rec.summary


def test_between_the_bound_and_the_tie_band_the_conservative_test_stays(tmp_path):
    # 100 ± 2 against 90 ± 2: +11%, but ten repetitions could reach 94.3 and 95.7; with two the
    # gap is 3.5 spreads on one degree of freedom: not decided.
    rec = _recommend(tmp_path, [("tg128", "100.00 ± 2.00")], [("tg128", "90.00 ± 2.00")])
    v = rec.verdict("moe", "tg", "short")
    assert v.winner is None and v.confidence == "low", v.summary
    assert not v.comparisons[0].cells[0].separated


def test_a_gap_inside_the_tie_band_is_a_tie_however_tight(tmp_path):
    rec = _recommend(tmp_path, [("tg128", "61.20 ± 0.01")], [("tg128", "60.00 ± 0.01")])
    assert rec.verdict("moe", "tg", "short").status == "tie"


def test_zero_spreads_with_no_spread_anywhere_may_be_single_runs(tmp_path):
    # "± 0.00" everywhere: -r 1 prints that too, so nothing is tested.
    rec = _recommend(tmp_path, [("tg128", "61.20 ± 0.00")], [("tg128", "44.90 ± 0.00")])
    v = rec.verdict("moe", "tg", "short")
    assert (v.status, v.confidence) == ("lead", "one run")


def test_busy_machine_aa_runs_printed_as_mean_and_spread_have_no_winner():
    """The thirty recorded A/A runs with their repetitions dropped (mean ± sd only)."""
    runs: dict[int, list[ProfileResult]] = defaultdict(list)
    for line in (Path(__file__).parent / "data" / "aa-cpu-busy-2core" / "runs.jsonl").read_text().splitlines():
        item = json.loads(line)
        record = {k: v for k, v in item["record"].items() if k not in ("samples_ts", "samples_ns")}
        runs[item["run"]].append(ProfileResult(item["build"], BenchResult.from_llama_bench(record)))
    assert len(runs) == 30
    for i, results in sorted(runs.items()):
        rec = recommend_run(RunRecords(results=tuple(results)))
        assert all(v.winner is None for v in rec.verdicts), (i, [v.summary for v in rec.verdicts])
        assert rec.crossovers == (), i


def test_a_setting_a_table_leaves_out_is_llama_bench_default(tmp_path):
    # llama-bench's markdown prints a column only where it differs from the default: the
    # table without type_k ran with f16, and the labels say so.
    (tmp_path / "f16.md").write_text(_table("ROCm", [("tg128", "61.20 ± 0.10")]))
    q8 = (HEADER.replace("| fa |", "| type_k | type_v | fa |", 1).replace("| -: |", "| -----: | -----: | -: |", 1)
          + f"{MODEL} ROCm       |  99 |   q8_0 |   q8_0 |  1 |           tg128 |         55.20 ± 0.10 |\n"
          + "\nbuild: 1a68ec937 (9193)\n")
    (tmp_path / "q8.md").write_text(q8)
    (machine,) = import_files([tmp_path / "f16.md", tmp_path / "q8.md"]).machines()
    rec = recommend_run(machine.records())
    assert sorted(c.label for c in rec.contenders) == ["ROCm ctk=f16 ctv=f16", "ROCm ctk=q8_0 ctv=q8_0"]
    assert rec.verdict("moe", "tg", "short").winner == "ROCm ctk=f16 ctv=f16"
    assert not any("?" in c.label for c in rec.contenders)


def test_a_fit_target_column_on_one_table_only_names_the_default(tmp_path):
    (tmp_path / "plain.md").write_text(_table("ROCm", [("tg128", "61.20 ± 0.10")]))
    fitted = (HEADER.replace("| fa |", "| fitt | fa |", 1).replace("| -: |", "| ---: | -: |", 1)
              + f"{MODEL} ROCm       |  99 | 1024 |  1 |           tg128 |         60.90 ± 0.10 |\n"
              + "\nbuild: 1a68ec937 (9193)\n")
    (tmp_path / "fitted.md").write_text(fitted)
    (machine,) = import_files([tmp_path / "plain.md", tmp_path / "fitted.md"]).machines()
    rec = recommend_run(machine.records())
    assert sorted(c.label for c in rec.contenders) == ["ROCm fitt=1024", "ROCm fitt=default"]
