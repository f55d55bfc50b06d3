"""Published llama-bench outputs from other people's machines: the verdict says what the numbers show.

Two collections: ``../shared/realdata`` (read in place) and ``tests/data/realworld`` (each folder
with a SOURCE.txt: URL, author, date, what the author concluded and our own reading of the
numbers, written before the verdict was). Every expectation below comes from that reading.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from profiles.importers import import_files, read_file
from profiles.verdict import recommend_run

WORLD = Path(__file__).parent / "data" / "realworld"

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
BENCH_GLOBS = (
    ("h100-cuda-vs-vulkan/*.jsonl", None),
    ("EDGE-lhl-rocm-hip-vs-rocwmma-depth/*.default-*.jsonl", 10),
    ("EDGE-lhl-rocm-hip-vs-rocwmma-depth/*.lhl-tune-tile.jsonl", 10),
    ("kyuz0-strixhalo-depth-curves-2026/*/*.jsonl", 9),
    ("kyuz0-strixhalo-depth-curves-2026/*/curve_summary.csv", 90),
    ("hogeheer-strixhalo-hip-vs-vulkan-csv/*/*-r5.csv", None),
)
# A llama-bench CSV with a header and no rows beside the .stderr that says the model failed to load.
FAILED_RUN = "hogeheer-strixhalo-hip-vs-vulkan-csv/hip-vs-vulkan-crossover-b9010-vs-b8460/gemma4-26b-b8460-hip-prefill-r5.csv"


def _expectations(root: Path) -> dict[str, tuple[int | None, int]]:
    out: dict[str, tuple[int | None, int]] = dict(BENCH_FILES)
    for pattern, count in BENCH_GLOBS:
        for path in root.glob(pattern):
            rel = str(path.relative_to(root))
            if rel != FAILED_RUN:
                out[rel] = (count, 0)
    return out


def test_every_shared_file_imports_or_says_why_in_one_line(realdata):
    expected = _expectations(realdata)
    files = sorted(p for p in realdata.rglob("*") if p.is_file())
    assert len(files) > 150
    seen = set()
    for path in files:
        rel = str(path.relative_to(realdata))
        run = import_files([path])
        assert all("\n" not in p for p in run.problems), rel
        if rel in expected:
            seen.add(rel)
            results, failures = expected[rel]
            if results is None:
                assert run.result_count > 0, rel
            else:
                assert (run.result_count, run.failure_count) == (results, failures), rel
        elif rel == FAILED_RUN:
            (failure,) = [f for fs in run.failures.values() for f in fs]
            assert run.result_count == 0 and failure.phase == "pp"
            assert "failed to load model" in failure.reason and "gemma4-26b-b8460-hip-prefill-r5.stderr" in failure.reason
            assert run.builds[0].backend == "ROCm" and run.builds[0].build_number == 8460
        else:
            # Notes, logs beside their results, manifests, scripts: nothing to import, said in one line.
            assert run.result_count == 0 and run.failure_count == 0, rel
            assert run.problems, rel
    assert seen == set(expected)


def _run(*patterns: str, root: Path = WORLD, one_machine: bool = False):
    files = sorted(f for pattern in patterns for f in root.glob(pattern))
    assert files, patterns
    run = import_files(files, one_machine=one_machine)
    machines = [m for m in run.machines() if m.result_count]
    return run, machines, [recommend_run(m.records()) for m in machines]


# ---------------------------------------------------------------------------------------
# tests/data/realworld: our collection (SOURCE.txt in each folder)


def test_kyuz0_ministral_rocm_beats_radv_and_amdvlk_crashes():
    run, (_machine,), (rec,) = _run("kyuz0-ministral-bf16-logs/*.log")
    assert sorted(run.results) == ["ROCm 6.4.4", "ROCm 7-nightlies", "ROCm 7.2.3", "Vulkan amdvlk", "Vulkan radv"]
    assert run.results["Vulkan amdvlk"] == ()
    for workload in ("short_dense", "long_dense"):
        pp, tg = rec.verdict(workload, "pp"), rec.verdict(workload, "tg")
        assert pp.status == tg.status == "winner", (pp.summary, tg.summary)
        assert pp.winner.startswith("ROCm") and tg.winner.startswith("ROCm")
        assert pp.runner_up == tg.runner_up == "Vulkan radv"  # ROCm against the best of Vulkan
        assert "Vulkan amdvlk failed" in pp.summary and "ErrorDeviceLost" in pp.summary
    assert rec.verdict("short_dense", "pp").ratio == pytest.approx(808.74 / 255.05, rel=0.01)
    assert "x3.2" in rec.verdict("short_dense", "pp").summary
    assert rec.verdict("long_dense", "pp").ratio > 4.5  # x5.0 at 32K, x6.7 at 64K
    assert 1.05 < rec.verdict("short_dense", "tg").ratio < 1.12  # 8.51 vs 7.83: "± 0.00" still testable
    amdvlk = next(s for s in rec.stability if s.build == "Vulkan amdvlk")
    # Three crashed runs, each the two tests its siblings ran (pp512/tg128, pp2048/tg32 at 32K and 64K).
    assert not amdvlk.stable and amdvlk.failures == 6 and amdvlk.results == 0
    assert "exit 134, abort: vk::Queue::submit: ErrorDeviceLost" in amdvlk.note


def test_kyuz0_minimax_rocm_fails_at_64k_where_vulkan_ran():
    run, _, (rec,) = _run("kyuz0-minimax-m27-longctx-failures/*.log")
    reasons = {f.build: f.reason for fs in run.failures.values() for f in fs}
    assert reasons["ROCm 6.4.4"] == "exit 137, killed (out of memory or stopped)"
    assert reasons["ROCm 7-nightlies"] == "exit 0"
    assert reasons["ROCm 7.2.3"] == "no result and no error: the log stops after the device banner"
    # No command line and no row: each failed the tests the Vulkan runs of the same name did at 64K.
    assert {b: sorted(f.test for f in fs) for b, fs in run.failures.items()} == {
        b: ["pp2048 @ d65536", "tg32 @ d65536"] for b in ("ROCm 6.4.4", "ROCm 7-nightlies", "ROCm 7.2.3")}
    short_pp, short_tg = rec.verdict("moe", "pp", "short"), rec.verdict("moe", "tg", "short")
    assert short_pp.status == "tie"  # 243.25 vs 242.43
    assert short_tg.winner == "Vulkan radv" and short_tg.ratio == pytest.approx(31.08 / 23.11, rel=0.01)
    long_pp, long_tg = rec.verdict("moe", "pp", "long"), rec.verdict("moe", "tg", "long")
    assert long_pp.winner == "ROCm 7-nightlies" and long_pp.ratio == pytest.approx(156.27 / 33.86, rel=0.01)
    assert long_pp.recommended == "Vulkan radv"  # ROCm failed at 64K, where Vulkan ran
    # The numbers shown are the numbers used: both speeds from 32K, the one point both measured.
    assert long_pp.unpaired == ("only Vulkan radv measured pp2048 @ d65536",)
    assert "only Vulkan radv measured pp2048 @ d65536 (not in the margin)" in long_pp.summary
    typical = long_pp.typical_ts
    assert typical["ROCm 7-nightlies"] / typical["Vulkan radv"] == pytest.approx(long_pp.ratio)
    assert any("ROCm 7-nightlies is faster (x4.6) but failed here" in c for c in long_pp.caveats)
    assert long_tg.winner == "Vulkan radv" and "x2.2" in long_tg.summary


def test_kyuz0_rpc_rocm_ran_and_vulkan_failed_because():
    run, (_machine,), (rec,) = _run("kyuz0-rpc-two-node-2026-01/*.log")
    assert run.results["Vulkan amdvlk"] == run.results["Vulkan radv"] == ()
    assert {b.backend for b in run.builds if b.name.startswith("ROCm")} == {"ROCm,RPC"}
    v = rec.verdict("moe", "pp", "short")
    assert v.status == "tie" and all(t.startswith("ROCm,RPC") for t in v.tied)
    assert "Vulkan amdvlk failed" in v.summary and "Remote RPC server crashed" in v.summary
    assert "Vulkan radv failed" in v.summary and "failed to start container llama-vulkan-radv" in v.summary
    radv = next(s for s in rec.stability if s.build == "Vulkan radv")
    assert any("Failed to allocate a buffer" in r or "Failed to connect" in r for r in radv.reasons)
    long_pp = rec.verdict("moe", "pp", "long")
    assert long_pp.confidence == "one run"  # every long-context row prints "± 0.00"


def test_kyuz0_rpc_rocwmma_builds_survive_long_context():
    _, machines, (rec,) = _run("kyuz0-rpc-rocwmma-2025-12/*.log")
    assert len(machines) == 1  # "Radeon 8060S Graphics" and "AMD Radeon Graphics": one card
    failed = {s.build for s in rec.stability if not s.stable}
    assert failed and not any("rocwmma" in name for name in failed)
    reasons = " ".join(r for s in rec.stability for r in s.reasons)
    assert "GPU hang: Callback: Queue" in reasons and "HSA_STATUS_ERROR_EXCEPTION" in reasons
    assert "Remote RPC server crashed or returned malformed response" in reasons


def test_kyuz0_power_profile_folders_with_identical_file_names():
    run, _, (rec,) = _run("kyuz0-ryzen-ai-halo-power-profiles/*/*.jsonl")
    assert sorted(run.results) == ["ROCm default", "ROCm performance-iommu-off"]
    for workload, context in (("short_dense", "short"), ("long_dense", "long"), ("moe", "short"), ("moe", "long")):
        pp = rec.verdict(workload, "pp", context)
        assert (pp.status, pp.winner, pp.confidence) == ("winner", "ROCm performance-iommu-off", "decisive"), pp.summary
        assert "on every repetition" in pp.summary and 1.12 < pp.ratio < 1.25
    assert rec.verdict("short_dense", "tg").status == rec.verdict("long_dense", "tg").status == "tie"


def test_kyuz0_pr_build_against_vulkan_fork_on_one_host_and_not_the_other(realdata):
    kyuz0 = realdata / "kyuz0-strixhalo-depth-curves-2026"
    files = [*WORLD.glob("kyuz0-rocm714-pr26592-fw2/*.jsonl"), *kyuz0.glob("vulkan-radv-performance/*.jsonl"),
             *kyuz0.glob("rocm-7.14/*.jsonl")]
    machines = {m.machine: m for m in import_files(sorted(files)).machines()}
    assert set(machines) == {"fw1", "fw2"}  # run_metadata.txt: host fw1 / fw2
    assert sorted(machines["fw1"].results) == ["ROCm b10246"]  # never compared across hosts
    rec = recommend_run(machines["fw2"].records())
    assert rec.verdict("moe", "pp", "short").winner == "ROCm b10273"
    assert rec.verdict("moe", "pp", "long").winner == "Vulkan"
    moe_q4 = [x for x in rec.crossovers if x.model.startswith("Qwen3.6-35B-A3B-UD-Q4")]
    assert [(x.phase, x.leader_before, x.leader_after, x.low, x.high) for x in moe_q4] == [
        ("pp", "ROCm b10273", "Vulkan", 10240, 18432)]  # d8192+2048 and d16384+2048


def test_lhl_qwen3_32b_rerun_failed_everywhere_and_pp_lead_changes():
    run, (_machine,), (rec,) = _run("lhl-qwen3-32b-q8-rerun-failed/results.jsonl")
    assert run.failure_count == 260 and run.result_count == 260
    assert all(s.failures == 26 and s.results == 26 for s in rec.stability)
    pp = rec.verdict("short_dense", "pp")
    # hipBLASLt ROCm leads at 8 of 13 prompt lengths, Vulkan at 2 (pp64, pp128): a qualified win.
    assert (pp.winner, pp.confidence) == ("llama.cpp-hip hipblaslt=1", "moderate")
    assert "llama.cpp-vulkan is significantly ahead at 2 of 13 points" in pp.caveats
    # Like with like: the wrapper ran every build with and without -fa 1. Without it hipBLASLt
    # ROCm leads (the class's own pair); with it the lead (+10%) is not significant.
    same = {c.settings["flash_attn"]: c for c in pp.settings_comparisons if c.kind == "same"}
    assert (same["off"].leader, same["off"].other, same["off"].status) == (
        "llama.cpp-hip hipblaslt=1", "llama.cpp-vulkan", "winner")
    assert (same["on"].leader, same["on"].other, same["on"].status) == (
        "llama.cpp-hip hipblaslt=1 -fa 1", "llama.cpp-vulkan -fa 1", "no clear winner")
    assert "like with like: at fa off ROCm +26% (moderate); at fa on no clear winner" in pp.summary
    tg_same = [c for c in rec.verdict("short_dense", "tg").settings_comparisons if c.kind == "same"]
    assert {(c.settings["flash_attn"], c.leader_backend) for c in tg_same} == {("off", "Vulkan"), ("on", "Vulkan")}
    changes = [(x.leader_before.split()[0], x.leader_after.split()[0]) for x in rec.crossovers if x.phase == "pp"]
    assert changes == [("llama.cpp-hip", "llama.cpp-vulkan"), ("llama.cpp-vulkan", "llama.cpp-hip")]
    tg = rec.verdict("short_dense", "tg")
    assert tg.winner is None or tg.winner.startswith("llama.cpp-vulkan")
    energy = {e.contender: e for e in tg.energy}
    assert all(e.tokens_per_joule and e.tokens_per_joule > 0 and e.peak_vram_bytes for e in energy.values())
    assert all(e.throttled is None for e in energy.values())  # the wrapper never said: unknown, not False


def test_mixa3607_mi50_rocm_version_column_makes_the_contenders():
    run, (_machine,), (rec,) = _run("mixa3607-mi50-rocm-versions/readme.md")
    assert sorted(run.results) == ["ROCm"]
    assert sorted(c.label for c in rec.contenders) == ["ROCm rocm 6.3.4", "ROCm rocm 6.4.1"]
    pp = rec.verdict("short_dense", "pp")
    # Six models, each judged alone: 6.4.1 wins on three, ties on three, loses on none.
    assert pp.winner == "ROCm rocm 6.4.1" and pp.status == "winner" and pp.model == "" and len(pp.models) == 6
    assert "ROCm rocm 6.4.1 on 3 of 6 models, no model the other way" in pp.summary
    for model in pp.models:
        mine = rec.verdict("short_dense", "pp", model=model)
        assert mine.model == model and mine.comparisons[0].significant_against == 0
        assert mine.status in ("winner", "tie") and {c.model for c in mine.comparisons[0].cells} == {model}
    assert rec.verdict("moe", "pp", "short").winner == "ROCm rocm 6.4.1"  # Llama 4 Scout: +18.7%
    assert rec.verdict("short_dense", "tg").status == rec.verdict("moe", "tg", "short").status == "tie"
    assert rec.verdict("short_dense", "pp").best_settings["ROCm rocm 6.4.1"] == {"n_gpu_layers": 99}


def test_lhl_shisa14b_single_repetitions_and_a_missing_depth():
    run, _, (rec,) = _run("lhl-shisa14b-rocwmma-missing-depth/*.jsonl")
    assert sorted(run.results) == ["ROCm default-hip", "ROCm default-rocwmma", "ROCm lhl-tune-tile"]
    assert {p.point.depth for p in run.results["ROCm lhl-tune-tile"]} == {0, 1024, 4096, 16384}
    assert run.failure_count == 0  # absent rows are not failures
    for v in rec.verdicts:
        assert v.confidence == "one run" and all(c.p_value is None for c in v.comparisons[0].cells)
    long_pp = rec.verdict("long_dense", "pp")
    wmma = next(c for c in long_pp.comparisons if c.other == "ROCm default-rocwmma")
    assert wmma.leader == "ROCm default-hip" and wmma.ratio == pytest.approx((295.15 * 107.78 / 238.02 / 78.92) ** 0.5, rel=0.01)


# ---------------------------------------------------------------------------------------
# ../shared/realdata


def test_h100_cuda_wins_everywhere(realdata):
    run, _, (rec,) = _run("h100-cuda-vs-vulkan/*.jsonl", root=realdata)
    assert {c.build for c in rec.contenders} == {"CUDA", "Vulkan"}
    for v in rec.verdicts:
        assert v.status == "winner" and v.winner.startswith("CUDA") and v.recommended.startswith("CUDA"), v.summary
    assert not rec.crossovers
    long_pp = rec.verdict("long_dense", "pp")
    assert long_pp.ratio > rec.verdict("short_dense", "pp").ratio  # Vulkan falls off with depth
    from profiles.exporters import launch_command
    from profiles.model import profile_from_import

    command = launch_command(profile_from_import(run.machines()[0], name="h100"), "split")
    argv = list(command.argv)
    assert argv[:3] == ["llama-server", "-m", "moe30b.gguf"] and argv[argv.index("-ncmoe") + 1] == "40"


def test_kyuz0_rocm_724_vs_vulkan_radv(realdata):
    base = "kyuz0-strixhalo-depth-curves-2026"
    _, _, (rec,) = _run(f"{base}/rocm-7.2.4/*.jsonl", f"{base}/vulkan-radv/*.jsonl", root=realdata)
    for context in ("short", "long"):
        assert rec.verdict("moe", "pp", context).winner == "ROCm"
        assert rec.verdict("moe", "tg", context).winner == "Vulkan"
    short, long = rec.verdict("short_dense", "pp"), rec.verdict("long_dense", "pp")
    assert short.winner == long.winner == "ROCm" and long.ratio > short.ratio
    # Two MoE models (Qwen3.6-35B-A3B at Q4 and Q8), each judged alone; the class line says
    # "on both models" because they agree.
    moe_pp = rec.verdict("moe", "pp", "short")
    assert moe_pp.summary == ("MoE, short context — prompt processing: ROCm on both models (+17%, +18%; decisive).")
    assert [v.model for v in rec.verdicts if v.workload == "moe" and v.phase == "pp" and v.context == "short"] == [
        "", "Qwen3.6-35B-A3B-UD-Q4_K_XL.gguf", "Qwen3.6-35B-A3B-UD-Q8_K_XL.gguf"]
    # Generation at short context: Vulkan +16% on Q4, a tie (2.7%) on Q8: no model the other way.
    moe_tg = rec.verdict("moe", "tg", "short")
    assert "Vulkan on 1 of 2 models, no model the other way" in moe_tg.summary and "a tie on" in moe_tg.summary
    assert rec.verdict("short_dense", "tg").status == rec.verdict("long_dense", "tg").status == "tie"
    assert not rec.crossovers
    # The author ran each backend at its own ubatch (file names: ROCm ub512, Vulkan ub256 for
    # the 27B): the verdict names both and says nothing was measured like with like.
    assert ("settings differ: ROCm with ub=512 (the default), Vulkan with ub=256; nothing was measured "
            "at the same settings on both sides") in short.summary
    q4 = rec.verdict("moe", "pp", "short", model="Qwen3.6-35B-A3B-UD-Q4_K_XL.gguf")
    assert "settings differ: ROCm with ub=2048, Vulkan with ub=1024" in q4.summary


def test_kyuz0_q8_double_crossover_needs_one_machine(realdata):
    base = "kyuz0-strixhalo-depth-curves-2026"
    patterns = (f"{base}/rocm-7.2.4/Qwen3.6-35B-A3B-UD-Q8_K_XL__*curve-prefill*.jsonl",
                f"{base}/vulkan-radv-performance/Qwen3.6-35B-A3B-UD-Q8_K_XL__*curve-prefill*.jsonl")
    _, machines, _ = _run(*patterns, root=realdata)
    assert sorted(m.machine for m in machines) == ["fw1", "fw2"]  # two hosts: not compared by default
    _, _, (rec,) = _run(*patterns, root=realdata, one_machine=True)
    # Vulkan-perf leads at d16384 and d24576 on tight repetitions; ROCm's lead from d32768 on
    # (742 vs a median 685) meets Vulkan repetitions that jump 7-20% on their first run
    # ([731, 685, 680], [558, 466, 455]): three such repetitions cannot carry the second
    # crossover, so only the first is reported, placed between d0 and d16384 (d8192: +2%).
    (cross,) = rec.crossovers
    assert (cross.leader_before, cross.leader_after, cross.low, cross.high) == ("ROCm", "Vulkan", 2048, 18432)
    long_pp = rec.verdict("moe", "pp", "long")
    assert long_pp.winner is None and "Vulkan significantly ahead at 2 of 7 points" in long_pp.summary


def test_lhl_hip_vs_rocwmma_single_runs(realdata):
    run, _, (rec,) = _run("EDGE-lhl-rocm-hip-vs-rocwmma-depth/gpt-oss-20b.default-*.jsonl", root=realdata)
    assert sorted(run.results) == ["ROCm hip", "ROCm rocwmma"]
    for v in rec.verdicts:
        assert v.confidence == "one run" and v.p_value is None
    assert rec.verdict("moe", "tg", "long").winner == "ROCm hip"  # 34.76 vs 14.63 at 64K
    assert not rec.crossovers  # single runs cannot make a crossover significant


def test_hogeheer_same_build_split_by_phase(realdata):
    _, _, (rec,) = _run("hogeheer-strixhalo-hip-vs-vulkan-csv/same-build-hip-vulkan-b9049/*.csv", root=realdata)
    assert rec.verdict("moe", "pp", "short").winner == rec.verdict("moe", "pp", "long").winner == "ROCm"
    assert rec.verdict("moe", "tg", "short").winner == "Vulkan"
    assert not rec.crossovers


def test_tiry_merged_tables_split_by_gpu(realdata):
    run = import_files([realdata / "tiry-strixhalo-rocm-vulkan-and-rtx4070ti-cuda-vulkan/benchmark-ReadMe.md"])
    machines = run.machines()
    assert len(machines) == 2 and all(sorted(m.results) in (["ROCm", "Vulkan"], ["CUDA", "Vulkan"]) for m in machines)
    amd = recommend_run(next(m for m in machines if "ROCm" in m.results).records())
    nvidia = recommend_run(next(m for m in machines if "CUDA" in m.results).records())
    assert amd.verdict("short_dense", "pp").winner == "ROCm"
    amd_tg = amd.verdict("short_dense", "tg")
    # Per model: Vulkan generates faster on five models, ROCm on mistral3 3B F16 (64.36 against
    # 62.31 ± 0.25 on the RTX run's table, 3.8% here): the class depends on the model.
    assert (amd_tg.status, amd_tg.winner, amd_tg.recommended) == ("by model", None, None)
    assert "it depends on the model" in amd_tg.summary and "ROCm +3.8% (decisive) on mistral3 3B F16" in amd_tg.summary
    assert amd.verdict("short_dense", "tg", model="llama 8B Q5_K - Medium").winner == "Vulkan"
    assert amd.verdict("short_dense", "tg", model="gemma3n E4B Q8_0").recommended == "ROCm"  # Vulkan's run was N/A
    assert nvidia.verdict("short_dense", "pp").winner == "CUDA"
    # Generation on the RTX card: within +0.7% .. +2.9% on five models; CUDA ahead beyond the 3%
    # band where the printed spreads cannot overlap on gemma3n (64.32 ± 0.02 against 60.26 ± 0.27) and
    # mistral3 3B F16 (64.36 ± 0.01 against 62.31 ± 0.25).
    nvidia_tg = nvidia.verdict("short_dense", "tg")
    assert (nvidia_tg.status, nvidia_tg.winner) == ("winner", "CUDA")
    assert "CUDA on 2 of 7 models, no model the other way" in nvidia_tg.summary
    assert nvidia.verdict("short_dense", "tg", model="mistral3 14B Q6_K").status == "tie"
    # Both failed mistral3 14B Q8_0 on the 12 GB card: a test nobody ran disqualifies no one.
    assert nvidia.verdict("short_dense", "pp").recommended == "CUDA"


def test_tiry_author_csv_is_one_run(realdata):
    run = import_files([realdata / "tiry-strixhalo-rocm-vulkan-and-rtx4070ti-cuda-vulkan/benchmarks.csv"])
    for machine in run.machines():
        for v in recommend_run(machine.records()).verdicts:
            assert v.p_value is None
            assert v.confidence == "one run" or v.status == "single contender", v.summary


def test_old_format_excerpts(realdata):
    base = "EDGE-issue-excerpts-old-format-and-pg"
    _, _, (rec,) = _run(f"{base}/llama.cpp-PR5835-*.md", root=realdata)
    pp = rec.verdict("short_dense", "pp")
    assert pp.status == "tie" and set(pp.tied) == {"Vulkan (PR)", "ROCm"}  # 323.04 vs 318.71
    assert rec.verdict("short_dense", "tg").winner == "ROCm"  # 60.44 vs 37.80
    _, _, (rec,) = _run(f"{base}/llama.cpp-PR2059-*.md", root=realdata)
    assert rec.verdict("short_dense", "pp").winner == "ROCm ngl=99"  # 684.11 vs 374.44 vs 121.56
    assert rec.verdict("split", "pp", "short").comparisons[0].leader == "ROCm ngl=0"  # 248.76 vs 103.91
    _, _, (rec,) = _run(f"{base}/geerlingguy-*.md", root=realdata)
    assert [v.phase for v in rec.verdicts] == ["pp", "tg", "pg"]
    assert all(v.status == "single contender" for v in rec.verdicts)
    assert read_file(realdata / f"{base}/geerlingguy-ai-benchmarks-issue20-2025-02-12-RX580-pg.md").format == "markdown"


def test_lhl_wrapper_failures_and_combined_backends(realdata):
    base = realdata / "EDGE-lhl-gptoss20b-vulkan-rpc-failed-runs"
    raw = import_files([base / "raw_runs.jsonl"])
    assert any(b.backend == "Vulkan,RPC" for b in raw.builds)
    wrapped = import_files([base / "results.jsonl"])
    amdvlk_fa = wrapped.failures["llama.cpp-vulkan_amdvlk -fa 1"]
    assert len(amdvlk_fa) == 26 and all(f.reason == "the run produced no llama-bench record" for f in amdvlk_fa)
    rec = recommend_run(wrapped.machines()[0].records())
    stability = {s.build: s for s in rec.stability}
    # The failed lines carry no build number: they join the one build with their label.
    assert stability["llama.cpp-vulkan_amdvlk -fa 1"].note.startswith("ran 26 tests and failed 26")


def test_recommend_json_over_two_machines_is_one_document(realdata):
    import json
    import os
    import subprocess
    import sys

    path = realdata / "tiry-strixhalo-rocm-vulkan-and-rtx4070ti-cuda-vulkan/benchmark-ReadMe.md"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-m", "tui.cli", "recommend", "--format", "json", str(path)],
                          capture_output=True, text=True, env=env, timeout=120, check=True)
    document = json.loads(done.stdout)
    machines = document["machines"]
    assert sorted(m["machine"] for m in machines) == ["NVIDIA GeForce RTX 4070 Ti", "Radeon 8060S Graphics"]
    tg = next(v for m in machines if "CUDA" in m["builds"] for v in m["verdicts"]
              if v["phase"] == "tg" and not v.get("model"))
    assert tg["winner"] == "CUDA" and len(tg["models"]) == 7


def test_m4pro_tables_without_kv_or_ubatch_columns_name_the_defaults():
    # The report's first MoE table has no type_k/type_v/n_ubatch columns (llama-bench prints
    # only what differs from its defaults); the later tables have them.
    _, _, (rec,) = _run("m4pro-metal-qwen35-report-tables-and-csv/llama-bench-report.md")
    labels = sorted(c.label for c in rec.contenders)
    assert labels == ["BLAS,MTL ub=2048 ctk=q4_1 ctv=q4_1", "BLAS,MTL ub=2048 ctk=q8_0 ctv=q8_0",
                      "BLAS,MTL ub=512 ctk=f16 ctv=f16", "BLAS,MTL ub=512 ctk=q4_1 ctv=q4_1"]
    assert not any("?" in line for line in rec.summary)
    # The author's two settings of the MoE model at 64K: a tie (275.57 against 272.52).
    assert rec.verdict("moe", "pp", "long").status == "tie"
