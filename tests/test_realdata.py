"""Published llama-bench outputs (../shared/realdata), read in place.

Every file is imported: llama-bench outputs give results (or, for a failed run, a clear
problem); notes, logs and manifests give one-line problems and never a crash. Verdicts
are checked against what each folder's SOURCE.txt says the numbers show.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from profiles.importers import import_files, read_file
from profiles.verdict import recommend

# Files that are llama-bench output (or an author's CSV with llama-bench's columns), with
# the rows they hold: (results, failures).
BENCH_FILES = {
    "EDGE-issue-excerpts-old-format-and-pg/geerlingguy-ai-benchmarks-issue20-2025-02-12-RX580-pg.md": (4, 0),
    "EDGE-issue-excerpts-old-format-and-pg/llama.cpp-PR2059-0cc4m-2024-01-22-RX6800XT.TRUNCATED.md": (11, 0),
    "EDGE-issue-excerpts-old-format-and-pg/llama.cpp-PR5835-DaniAndTheWeb-2024-03-03-RX5700XT.md": (6, 0),
    "EDGE-lhl-gptoss20b-vulkan-rpc-failed-runs/raw_runs.jsonl": (370, 0),
    "EDGE-lhl-gptoss20b-vulkan-rpc-failed-runs/results.jsonl": (360, 56),
    "EDGE-lhl-rocm-hip-vs-rocwmma-depth/quick-test.jsonl": (6, 0),
    "hogeheer-strixhalo-hip-vs-vulkan-csv/AUTHOR-data-backend_crossover.csv": (25, 1),
    "lhl-strixhalo-llmbench-sweeps/AUTHOR-llm-bench-README.md": (8, 0),
    "lhl-strixhalo-llmbench-sweeps/Qwen3-30B-A3B-UD-Q4_K_XL/raw_runs.jsonl": (520, 0),
    "lhl-strixhalo-llmbench-sweeps/Qwen3-30B-A3B-UD-Q4_K_XL/results.jsonl": (519, 1),
    "lhl-strixhalo-llmbench-sweeps/llama-2-7b.Q4_0/raw_runs.jsonl": (364, 0),
    "lhl-strixhalo-llmbench-sweeps/llama-2-7b.Q4_0/results.jsonl": (364, 0),
    "tiry-strixhalo-rocm-vulkan-and-rtx4070ti-cuda-vulkan/benchmark-ReadMe.md": (58, 6),
    "tiry-strixhalo-rocm-vulkan-and-rtx4070ti-cuda-vulkan/benchmarks.csv": (59, 0),
}
# Whole families, by pattern: (glob, results per file or None for "at least one").
BENCH_GLOBS = (
    ("h100-cuda-vs-vulkan/*.jsonl", None),
    ("EDGE-lhl-rocm-hip-vs-rocwmma-depth/*.default-*.jsonl", 10),
    ("EDGE-lhl-rocm-hip-vs-rocwmma-depth/*.lhl-tune-tile.jsonl", 10),
    ("kyuz0-strixhalo-depth-curves-2026/*/*.jsonl", 9),
    ("kyuz0-strixhalo-depth-curves-2026/*/curve_summary.csv", 90),
    ("hogeheer-strixhalo-hip-vs-vulkan-csv/*/*-r5.csv", None),
)
# A llama-bench CSV with a header and no rows: the model failed to load.
FAILED_RUN = "hogeheer-strixhalo-hip-vs-vulkan-csv/hip-vs-vulkan-crossover-b9010-vs-b8460/gemma4-26b-b8460-hip-prefill-r5.csv"


def _bench_expectations(root: Path) -> dict[str, tuple[int, int] | tuple[None, int]]:
    out: dict = dict(BENCH_FILES)
    for pattern, count in BENCH_GLOBS:
        for path in root.glob(pattern):
            rel = str(path.relative_to(root))
            if rel != FAILED_RUN:
                out[rel] = (count, 0)
    return out


def test_every_file_imports_or_says_why_in_one_line(realdata):
    expected = _bench_expectations(realdata)
    files = sorted(p for p in realdata.rglob("*") if p.is_file())
    assert len(files) > 150
    seen_bench = set()
    for path in files:
        rel = str(path.relative_to(realdata))
        run = import_files([path])
        assert all("\n" not in p for p in run.problems), rel
        if rel in expected:
            seen_bench.add(rel)
            results, failures = expected[rel]
            if results is None:
                assert run.result_count > 0, rel
            else:
                assert (run.result_count, run.failure_count) == (results, failures), rel
        elif rel == FAILED_RUN:
            assert run.result_count == 0 and any("no llama-bench results" in p for p in run.problems)
        else:
            # Notes, logs, manifests, scripts: nothing to import, said in one line.
            assert run.result_count == 0, rel
            assert run.problems, rel
    assert seen_bench == set(expected)


def _rec(realdata: Path, *patterns: str):
    files = sorted(f for pattern in patterns for f in realdata.glob(pattern))
    assert files, patterns
    run = import_files(files)
    return run, recommend(run.results, run.failures)


def test_h100_cuda_wins_everywhere_and_vulkan_falls_off_with_depth(realdata):
    run, rec = _rec(realdata, "h100-cuda-vs-vulkan/*.jsonl")
    assert sorted(run.results) == ["CUDA", "Vulkan"]
    assert {(v.workload, v.phase) for v in rec.verdicts} == {
        (w, p) for w in ("short_dense", "long_dense", "moe", "split") for p in ("pp", "tg")}
    for v in rec.verdicts:
        assert v.status == "winner" and v.winner == "CUDA" and v.recommended == "CUDA", v.summary
        assert not v.crossovers
    # Vulkan's prompt speed falls faster: CUDA's lead grows with depth (2481 -> 801 vs 10314 -> 5584).
    dense_pp = [c for v in rec.verdicts if v.workload in ("short_dense", "long_dense") and v.phase == "pp"
                for c in v.comparisons[0].cells]
    by_depth = sorted(dense_pp, key=lambda c: c.context)
    assert by_depth[0].challenger_ts == pytest.approx(10313.96, rel=1e-4)
    assert by_depth[-1].baseline_ts == pytest.approx(801.4, rel=1e-3)
    assert by_depth[-1].ratio > 1.5 * by_depth[0].ratio  # 4.2x at depth 0, 7.0x at 32K
    split = rec.verdict("split", "pp")
    assert "decisive" in split.confidence  # two repetitions each, no overlap
    from profiles.exporters import launch_command
    from profiles.model import profile_from_import

    command = launch_command(profile_from_import(run, name="h100"), "split")
    argv = list(command.argv)
    assert argv[:3] == ["llama-server", "-m", "moe30b.gguf"] and argv[argv.index("-ncmoe") + 1] == "40"


def test_kyuz0_rocm_724_vs_vulkan_radv(realdata):
    base = "kyuz0-strixhalo-depth-curves-2026"
    run, rec = _rec(realdata, f"{base}/rocm-7.2.4/*.jsonl", f"{base}/vulkan-radv/*.jsonl")
    assert sorted(run.results) == ["ROCm", "Vulkan"]
    # MoE: ROCm wins pp, Vulkan wins tg, at every depth (no crossover).
    assert rec.verdict("moe", "pp").winner == "ROCm" and not rec.verdict("moe", "pp").crossovers
    assert rec.verdict("moe", "tg").winner == "Vulkan" and not rec.verdict("moe", "tg").crossovers
    assert all(c.ratio > 1 for c in rec.verdict("moe", "pp").comparisons[0].cells)
    # Dense: ROCm wins pp and the gap widens with depth; tg is a tie (memory-bound).
    short, long = rec.verdict("short_dense", "pp"), rec.verdict("long_dense", "pp")
    assert short.winner == long.winner == "ROCm" and long.margin_pct > short.margin_pct
    assert rec.verdict("short_dense", "tg").status == "tie"
    assert rec.verdict("long_dense", "tg").status == "tie"


def test_kyuz0_q8_moe_prefill_double_crossover(realdata):
    base = "kyuz0-strixhalo-depth-curves-2026"
    run, rec = _rec(realdata, f"{base}/rocm-7.2.4/Qwen3.6-35B-A3B-UD-Q8_K_XL__*curve-prefill*.jsonl",
                    f"{base}/vulkan-radv-performance/Qwen3.6-35B-A3B-UD-Q8_K_XL__*curve-prefill*.jsonl")
    v = rec.verdict("moe", "pp")
    crossings = sorted(v.crossovers, key=lambda x: x.at)
    assert [(x.low, x.high, x.leader_before, x.leader_after) for x in crossings] == [
        (8192, 16384, "ROCm", "Vulkan"), (24576, 32768, "Vulkan", "ROCm")]
    assert v.winner == "ROCm"  # ROCm leads at 7 of 9 depths
    assert any("Vulkan is significantly ahead at 2 of 9" in c for c in v.caveats)


def test_kyuz0_q8_moe_generation_vulkan_only_marginally_ahead(realdata):
    base = "kyuz0-strixhalo-depth-curves-2026"
    _, rec = _rec(realdata, f"{base}/rocm-7.2.4/Qwen3.6-35B-A3B-UD-Q8_K_XL__*curve-generation*.jsonl",
                  f"{base}/vulkan-radv/Qwen3.6-35B-A3B-UD-Q8_K_XL__*curve-generation*.jsonl")
    v = rec.verdict("moe", "tg")
    assert v.winner == "Vulkan" and 0 < v.margin_pct < 4


def test_lhl_hip_vs_rocwmma_file_names_and_depth_crossover(realdata):
    run, rec = _rec(realdata, "EDGE-lhl-rocm-hip-vs-rocwmma-depth/gpt-oss-20b.default-*.jsonl")
    assert sorted(run.results) == ["ROCm hip", "ROCm rocwmma"]  # same build, told apart by file
    pp = rec.verdict("moe", "pp")
    (cross,) = pp.crossovers
    assert (cross.low, cross.high, cross.leader_before, cross.leader_after) == (4096, 16384, "ROCm rocwmma", "ROCm hip")
    assert not cross.tested  # one repetition per point: the crossover cannot be tested
    tg = rec.verdict("moe", "tg")
    deepest = max(tg.comparisons[0].cells, key=lambda c: c.context)
    assert deepest.ratio == pytest.approx(34.76 / 14.63, rel=0.01)
    # Single repetitions: the verdict must not claim confidence it does not have.
    assert pp.status == tg.status == "no clear winner"


def test_hogeheer_same_build_split_by_phase(realdata):
    run, rec = _rec(realdata, "hogeheer-strixhalo-hip-vs-vulkan-csv/same-build-hip-vulkan-b9049/*.csv")
    assert sorted(run.results) == ["ROCm", "Vulkan"]
    pp, tg = rec.verdict("moe", "pp"), rec.verdict("moe", "tg")
    assert pp.winner == "ROCm" and tg.winner == "Vulkan"
    assert all(c.ratio > 1 for c in pp.comparisons[0].cells)  # HIP ahead at every prompt length
    assert all(c.ratio > 1 for c in tg.comparisons[0].cells)  # Vulkan ahead on every model
    assert not pp.crossovers
    coder = sorted((c for c in pp.comparisons[0].cells if "Coder" in c.model), key=lambda c: c.context)
    assert coder[-1].ratio > coder[0].ratio + 0.15  # +7% at pp512 growing to +32% at pp16384


def test_tiry_merged_tables_split_by_gpu(realdata):
    files = [realdata / "tiry-strixhalo-rocm-vulkan-and-rtx4070ti-cuda-vulkan/benchmark-ReadMe.md"]
    arenas = import_files(files).arenas()
    assert len(arenas) == 2
    by_gpu = {tuple(sorted(a.results)): recommend(a.results, a.failures) for a in arenas}
    amd = next(r for k, r in by_gpu.items() if "ROCm" in k)
    nvidia = next(r for k, r in by_gpu.items() if "CUDA" in k)
    assert amd.verdict("short_dense", "pp").winner == "ROCm"
    amd_tg = amd.verdict("short_dense", "tg")
    assert amd_tg.winner.startswith("Vulkan")
    # mistral3 3B F16 is the exception (ROCm 28.92 > Vulkan 27.86).
    assert any("ROCm is significantly ahead at 1 of" in c for c in amd_tg.caveats)
    # gemma3n had no Vulkan result (N/A): by the stability rule ROCm is recommended, with a caveat.
    assert amd_tg.recommended == "ROCm" and any("unstable" in c for c in amd_tg.caveats)
    assert nvidia.verdict("short_dense", "pp").winner == "CUDA"
    nv_tg = nvidia.verdict("short_dense", "tg")
    assert nv_tg.winner == "CUDA" and nv_tg.margin_pct < 4  # tg close, CUDA slightly ahead


def test_tiry_author_csv_has_no_spread(realdata):
    run = import_files([realdata / "tiry-strixhalo-rocm-vulkan-and-rtx4070ti-cuda-vulkan/benchmarks.csv"])
    for arena in run.arenas():
        rec = recommend(arena.results, arena.failures)
        for v in rec.verdicts:
            assert v.status == "no clear winner" and "no repetition spread" in v.summary
        pp = rec.verdicts[0]
        assert max(pp.typical_ts, key=pp.typical_ts.get) in ("ROCm", "CUDA")


def test_lhl_prompt_length_crossover_and_vulkan_generation(realdata):
    run, rec = _rec(realdata, "lhl-strixhalo-llmbench-sweeps/Qwen3-30B-A3B-UD-Q4_K_XL/results.jsonl")
    pp = rec.verdict("moe", "pp")
    assert pp.winner == "llama.cpp-rocwmma hipblaslt=1 -fa 1"
    late = [x for x in pp.crossovers if x.low == 512 and x.high == 1024]
    assert [(x.leader_before, x.leader_after) for x in late] == [
        ("llama.cpp-vulkan b6077", "llama.cpp-rocwmma hipblaslt=1 -fa 1")]
    assert late[0].axis == "prompt length"
    tg = rec.verdict("moe", "tg")
    assert all(b.startswith("llama.cpp-vulkan") for b in tg.tied or (tg.winner,))


def test_failed_runs_and_combined_backends(realdata):
    base = realdata / "EDGE-lhl-gptoss20b-vulkan-rpc-failed-runs"
    raw = import_files([base / "raw_runs.jsonl"])
    assert any(b.backend == "Vulkan,RPC" for b in raw.builds)
    wrapped = import_files([base / "results.jsonl"])
    amdvlk_fa = wrapped.failures.get("llama.cpp-vulkan_amdvlk -fa 1", ())
    assert amdvlk_fa and all(f.reason for f in amdvlk_fa)
    rec = recommend(wrapped.results, wrapped.failures)
    assert any(not s.stable for s in rec.stability)


def test_old_format_excerpts(realdata):
    base = "EDGE-issue-excerpts-old-format-and-pg"
    _, rec = _rec(realdata, f"{base}/llama.cpp-PR5835-*.md")
    pp = rec.verdict("short_dense", "pp")
    assert pp.status == "tie" and set(pp.tied) == {"Vulkan (PR)", "ROCm"}  # 323.04 vs 318.71
    assert rec.verdict("short_dense", "tg").winner == "ROCm"  # 60.44 vs 37.80
    _, rec = _rec(realdata, f"{base}/llama.cpp-PR2059-*.md")
    assert rec.verdict("short_dense", "pp").winner == "ROCm"  # 684.11 vs 374.44 vs 121.56
    assert rec.verdict("split", "pp").winner == "ROCm"  # -ngl 0
    run, rec = _rec(realdata, f"{base}/geerlingguy-*.md")
    assert [v.phase for v in rec.verdicts] == ["pp", "tg", "pg"]
    assert all(v.status == "single build" for v in rec.verdicts)
    assert read_file(realdata / f"{base}/geerlingguy-ai-benchmarks-issue20-2025-02-12-RX580-pg.md").format == "markdown"
