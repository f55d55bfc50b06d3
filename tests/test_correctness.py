"""The correctness gate, on the real llama-perplexity of the CPU and Vulkan-on-lavapipe builds.

Healthy builds agree with the reference; a wrong build is caught whether its weights are
damaged (same binary, a copy of the model with noise in its tensor data) or its own
options make it compute something else; a crash, a time-out and a cancel leave no
process and no logits file behind.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import tomllib
from pathlib import Path

import gguf
import numpy as np
import psutil
import pytest
import tomli_w

from backends.builds import BuildInfo, probe_build
from backends.correctness import (
    BuildChecked,
    CheckFinished,
    CheckInputError,
    CheckStarted,
    CorrectnessResult,
    CorrectnessThresholds,
    check_builds,
    choose_reference,
    decided_by_first_chunk,
    judge,
    parse_divergence_output,
    reference_text,
    results_by_build,
    run_check,
)
from tui.cli import main as cli_main

# Small enough for lavapipe to read in a few seconds, and more than 100 scored tokens so
# llama.cpp prints its summary block: 4 chunks x (64 - 1 - 32) = 124.
FAST = {"context": 64, "chunks": 4}


@pytest.fixture(scope="module")
def cpu(cpu_bin: Path) -> BuildInfo:
    return probe_build(cpu_bin, "cpu")


@pytest.fixture(scope="module")
def vulkan(vulkan_bin: Path) -> BuildInfo:
    return probe_build(vulkan_bin, "vulkan")


@pytest.fixture
def no_leftovers(tmp_path: Path):
    """A scratch folder for logits files; after the test, no child process and no file."""
    work = tmp_path / "scratch"
    work.mkdir()
    yield work
    children = psutil.Process().children(recursive=True)
    assert not children, f"processes left running: {[c.name() for c in children]}"
    assert list(work.iterdir()) == [], "temporary logits files were left behind"


def renamed(build: BuildInfo, name: str) -> BuildInfo:
    """The same binary under another name, to compare it with itself."""
    from dataclasses import replace

    return replace(build, name=name)


def perturbed_copy(source: Path, target: Path, strength: float, seed: int = 1) -> Path:
    """Copy a model and add noise to its weights; the header stays byte for byte."""
    shutil.copyfile(source, target)
    reader = gguf.GGUFReader(target, "r+")
    rng = np.random.default_rng(seed)
    changed = 0
    for tensor in reader.tensors:
        if tensor.tensor_type != gguf.GGMLQuantizationType.F32 or "norm" in tensor.name:
            continue
        values = tensor.data
        noise = rng.standard_normal(values.shape) * strength * float(values.std())
        values += noise.astype(values.dtype)
        changed += 1
    reader.data.flush()
    first_data = min(t.data_offset for t in reader.tensors)
    del reader
    assert changed, "the model has no F32 weights to perturb"
    assert source.read_bytes()[:first_data] == target.read_bytes()[:first_data]
    return target


def truncated_copy(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) * 2 // 3])
    return target


def by_name(results: list[CorrectnessResult]) -> dict[str, CorrectnessResult]:
    return {r.build: r for r in results}


# --- judging and storing, no processes --------------------------------------------------

def test_judge_passes_small_differences_and_names_each_crossed_threshold() -> None:
    limits = CorrectnessThresholds(max_mean_kld=0.01, min_top1_agreement=0.95,
                                   max_ppl_delta_pct=2.0)
    assert judge(1e-4, 0.995, 10.01, 10.0, limits) == ("pass", "within thresholds")

    status, reason = judge(0.05, 0.80, 11.0, 10.0, limits)
    assert status == "suspect"
    assert "mean KLD 0.05 > 0.01" in reason
    assert "top-1 agreement 80.0% < 95%" in reason
    assert "+10.00%" in reason

    status, reason = judge(1e-4, 0.99, 9.5, 10.0, limits)
    assert status == "suspect" and "-5.00%" in reason and "KLD" not in reason


def test_judge_calls_nan_logits_suspect() -> None:
    status, reason = judge(math.nan, 0.0, math.nan, 10.0, CorrectnessThresholds())
    assert status == "suspect" and "non-finite" in reason


@pytest.mark.parametrize(("kld", "top1", "ppl", "decided"), [
    (0.0, 1.0, 100.0, True),  # the same build
    (1e-4, 0.99, 100.1, True),  # a quarter of every limit or less
    (1.9e-4, 0.96, 100.0, False),  # CPU against lavapipe on a small qwen3: read the whole text
    (0.0026, 0.857, 101.1, False),  # a rope base of 9500 for 10000: near the top-1 limit
    (0.08, 0.05, 92.0, True),  # rms epsilon 10: plainly wrong
    (0.89, 0.0, 86.7, True),  # another model
    (math.nan, 0.0, math.nan, True),  # broken logits
])
def test_a_first_chunk_decides_alone_only_far_from_every_limit(kld, top1, ppl, decided) -> None:
    limits = CorrectnessThresholds()
    status, _ = judge(kld, top1, ppl, 100.0, limits)
    result = CorrectnessResult(build="new", reference="ref", mean_kld=kld, top1_agreement=top1,
                               ppl=ppl, ppl_ref=100.0, status=status, context=128, chunks=1)
    assert decided_by_first_chunk(result, limits) is decided
    crashed = CorrectnessResult(build="new", reference="ref", status="failed", reason="SIGSEGV")
    assert decided_by_first_chunk(crashed, limits)


def test_thresholds_take_a_fraction_for_top1() -> None:
    with pytest.raises(CheckInputError, match="fraction"):
        CorrectnessThresholds(min_top1_agreement=95)


def test_result_round_trips_through_toml_without_none() -> None:
    result = CorrectnessResult("rocm", "cpu", mean_kld=0.002, top1_agreement=0.97, ppl=10.2,
                               ppl_ref=10.0, status="pass", reason="within thresholds",
                               context=512, chunks=6)
    failed = CorrectnessResult("nightly", "cpu", ppl_ref=10.0, status="failed",
                               reason="llama-perplexity crashed with SIGSEGV")
    document = {"correctness": {r.build: r.to_json() for r in (result, failed)}}
    text = tomli_w.dumps(document)
    assert "mean_kld" not in tomllib.loads(text)["correctness"]["nightly"]
    restored = {name: CorrectnessResult.from_json(data)
                for name, data in tomllib.loads(text)["correctness"].items()}
    assert restored == {"rocm": result, "nightly": failed}
    assert result.ppl_delta_pct == pytest.approx(2.0)
    assert failed.ppl_delta_pct is None


def test_reference_is_named_build_else_cpu_else_most_trusted(tmp_path: Path) -> None:
    def build(name: str, backend: str) -> BuildInfo:
        return BuildInfo(name=name, folder=tmp_path, perplexity=tmp_path / "llama-perplexity",
                         backend=backend)

    rocm, vulkan, cpu = build("rocm", "ROCm"), build("vk", "Vulkan"), build("cpu", "CPU")
    assert choose_reference([rocm, vulkan, cpu]).name == "cpu"
    assert choose_reference([rocm, vulkan]).name == "vk"
    assert choose_reference([rocm, vulkan, cpu], "rocm").name == "rocm"
    with pytest.raises(CheckInputError, match="not among the builds"):
        choose_reference([rocm], "cuda")
    with pytest.raises(CheckInputError, match="no builds"):
        choose_reference([])


def test_shipped_text_is_there_and_long_enough() -> None:
    with reference_text() as path:
        words = path.read_text(encoding="utf-8").split()
    assert len(words) > 2000  # several 512-token chunks for any real tokenizer


# --- real runs ------------------------------------------------------------------------------

@pytest.mark.toolchain
@pytest.mark.parametrize("model_fixture", ["tiny_llama", "tiny_moe"])
def test_cpu_and_vulkan_agree(request, cpu: BuildInfo, vulkan: BuildInfo, model_fixture: str,
                              no_leftovers: Path) -> None:
    model = request.getfixturevalue(model_fixture)
    assert vulkan.env.get("GGML_VK_VISIBLE_DEVICES") == "0"
    # The CPU build is the reference even when listed second.
    results = check_builds([vulkan, cpu], model, work_dir=no_leftovers, **FAST)
    assert [r.build for r in results] == ["cpu", "vulkan"]
    reference, other = results
    assert reference.status == "reference" and reference.ppl and reference.ppl > 1, reference
    assert other.status == "pass", other.reason
    assert other.reference == "cpu"
    assert other.mean_kld is not None and other.mean_kld < 0.01
    assert other.top1_agreement is not None
    assert other.top1_agreement >= CorrectnessThresholds().min_top1_agreement
    assert other.ppl_ref == reference.ppl
    assert abs(other.ppl_delta_pct) < 2


@pytest.mark.toolchain
def test_cpu_agrees_with_itself_on_another_thread_count(cpu: BuildInfo, tiny_llama: Path,
                                                        no_leftovers: Path) -> None:
    one_thread = renamed(cpu, "cpu-1t")
    results = by_name(check_builds([cpu, one_thread], tiny_llama, work_dir=no_leftovers,
                                   extra_args={"cpu": ["-t", "2"], "cpu-1t": ["-t", "1"]},
                                   **FAST))
    checked = results["cpu-1t"]
    assert checked.status == "pass", checked.reason
    assert checked.top1_agreement == pytest.approx(1.0, abs=0.01)
    assert abs(checked.mean_kld) < 1e-4


@pytest.mark.toolchain
def test_damaged_weights_are_caught(cpu: BuildInfo, tiny_llama: Path, tmp_path: Path,
                                    no_leftovers: Path) -> None:
    damaged = perturbed_copy(tiny_llama, tmp_path / "damaged.gguf", strength=0.3)
    same_binary = renamed(cpu, "cpu-damaged")
    results = by_name(check_builds([cpu, same_binary], tiny_llama, work_dir=no_leftovers,
                                   models={"cpu-damaged": damaged}, **FAST))
    caught = results["cpu-damaged"]
    assert caught.status == "suspect", caught
    assert caught.ppl is not None  # it loaded and ran: caught by its numbers, not a crash
    assert caught.top1_agreement < CorrectnessThresholds().min_top1_agreement
    assert "top-1 agreement" in caught.reason


@pytest.mark.toolchain
def test_options_that_break_the_numerics_are_caught(cpu: BuildInfo, vulkan: BuildInfo,
                                                    tiny_llama: Path,
                                                    no_leftovers: Path) -> None:
    # A RoPE base of 1 instead of the model's 10000 scrambles positions: plausible logits,
    # wrong ones.
    results = by_name(check_builds([cpu, vulkan], tiny_llama, work_dir=no_leftovers,
                                   extra_args={"vulkan": ["--rope-freq-base", "1"]}, **FAST))
    assert results["vulkan"].status == "suspect", results["vulkan"]
    assert "top-1 agreement" in results["vulkan"].reason


@pytest.mark.toolchain
def test_verdicts_count_a_suspect_or_failed_check_against_stability(
        cpu: BuildInfo, tiny_llama: Path, tmp_path: Path, no_leftovers: Path) -> None:
    from profiles.verdict import build_stability

    broken = truncated_copy(tiny_llama, tmp_path / "truncated.gguf")
    results = check_builds(
        [cpu, renamed(cpu, "wrong"), renamed(cpu, "broken")], tiny_llama,
        extra_args={"wrong": ["--rope-freq-base", "1"]}, models={"broken": broken},
        work_dir=no_leftovers, **FAST)
    stored = tomllib.loads(tomli_w.dumps({"correctness": results_by_build(results)}))
    stability = build_stability({"cpu": [], "wrong": [], "broken": []}, {},
                                stored["correctness"])
    assert stability["cpu"].stable, results
    assert not stability["wrong"].stable and "output suspect" in stability["wrong"].note
    assert not stability["broken"].stable and "output failed" in stability["broken"].note


@pytest.mark.toolchain
def test_a_crash_is_failed_with_its_reason(cpu: BuildInfo, tiny_llama: Path, tmp_path: Path,
                                           no_leftovers: Path) -> None:
    broken = truncated_copy(tiny_llama, tmp_path / "truncated.gguf")
    results = by_name(check_builds([cpu, renamed(cpu, "cpu-broken")], tiny_llama,
                                   work_dir=no_leftovers, models={"cpu-broken": broken},
                                   **FAST))
    assert results["cpu"].status == "reference", results["cpu"]
    failed = results["cpu-broken"]
    assert failed.status == "failed"
    assert "exited with code 1" in failed.reason
    # llama.cpp's own line when its log got out, else the model file's own problem
    assert "load model" in failed.reason or "incomplete" in failed.reason


@pytest.mark.toolchain
async def test_a_failed_reference_ends_the_check_with_a_problem(
        cpu: BuildInfo, tiny_llama: Path, tmp_path: Path, no_leftovers: Path) -> None:
    broken = truncated_copy(tiny_llama, tmp_path / "truncated.gguf")
    events = [event async for event in run_check(
        [cpu, renamed(cpu, "other")], tiny_llama, models={"cpu": broken},
        work_dir=no_leftovers, **FAST)]
    assert isinstance(events[0], CheckStarted) and events[0].reference == "cpu"
    checked = [e.result for e in events if isinstance(e, BuildChecked)]
    assert [r.status for r in checked] == ["failed"]
    finished = events[-1]
    assert isinstance(finished, CheckFinished)
    assert finished.problem and "reference build cpu failed" in finished.problem


@pytest.mark.toolchain
def test_a_time_out_is_failed(cpu: BuildInfo, tiny_llama: Path, no_leftovers: Path) -> None:
    results = check_builds([cpu, renamed(cpu, "b")], tiny_llama, work_dir=no_leftovers,
                           timeout=0.001, **FAST)
    assert [r.status for r in results] == ["failed"]
    assert "timed out after 0.001 s" in results[0].reason


@pytest.mark.toolchain
def test_the_reference_probabilities_are_kept_and_reused_until_its_build_changes(
        cpu: BuildInfo, tiny_llama: Path, no_leftovers: Path, tmp_path: Path) -> None:
    cache = tmp_path / "kept"
    first = by_name(check_builds([cpu, renamed(cpu, "b")], tiny_llama, work_dir=no_leftovers,
                                 reference_cache=cache, **FAST))
    assert first["b"].status == "pass" and first["cpu"].status == "reference"
    (entry,) = list(cache.iterdir())
    assert (entry / "reference.kld").stat().st_size > 0
    # Kept: under another name and with no time for any tool to run, the reference's result
    # is the first one's; the other build, which does run, times out.
    again = by_name(check_builds([renamed(cpu, "ref"), renamed(cpu, "b")], tiny_llama,
                                 work_dir=no_leftovers, reference_cache=cache, timeout=0.001, **FAST))
    assert again["ref"].status == "reference" and again["ref"].ppl == first["cpu"].ppl
    assert again["b"].status == "failed" and "timed out" in again["b"].reason
    # Another build as the reference (a library beside its tool differs): a new entry.
    other = tmp_path / "other-build"
    shutil.copytree(cpu.folder, other, symlinks=True)
    (other / "libggml-base.so").unlink()
    shutil.copyfile(Path(cpu.folder) / "libggml-base.so", other / "libggml-base.so")
    with open(other / "libggml-base.so", "ab") as library:
        library.write(b"\0")  # the same code, other bytes
    rebuilt = probe_build(other, "rebuilt")
    check_builds([rebuilt, renamed(cpu, "b")], tiny_llama, work_dir=no_leftovers,
                 reference_cache=cache, **FAST)
    assert len(list(cache.iterdir())) == 2


@pytest.mark.toolchain
async def test_cancel_kills_the_tool_and_removes_the_logits(
        cpu: BuildInfo, vulkan: BuildInfo, tiny_llama: Path, no_leftovers: Path) -> None:
    async def consume() -> None:
        async for _ in run_check([cpu, vulkan], tiny_llama, work_dir=no_leftovers):
            pass  # the whole text on lavapipe: long enough to be caught running

    task = asyncio.create_task(consume())
    seen_running = False
    for _ in range(2000):
        await asyncio.sleep(0.01)
        if any(c.name() == "llama-perplexity" for c in psutil.Process().children()):
            seen_running = True
            break
    assert seen_running and not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # no_leftovers checks that no process and no file remain


@pytest.mark.toolchain
def test_a_short_text_gets_a_smaller_context(cpu: BuildInfo, tiny_llama: Path, tmp_path: Path,
                                             no_leftovers: Path) -> None:
    with reference_text() as shipped:
        words = shipped.read_text(encoding="utf-8").split()[:120]
    short = tmp_path / "short.txt"
    short.write_text(" ".join(words), encoding="utf-8")
    results = check_builds([cpu, renamed(cpu, "again")], tiny_llama, text=short,
                           work_dir=no_leftovers)
    assert [r.status for r in results] == ["reference", "pass"], results
    assert results[0].context is not None and results[0].context < 512
    assert results[0].chunks is not None and results[0].chunks >= 2

    # With a context the user asked for, a too-short text is the reason, not a retry.
    results = check_builds([cpu], tiny_llama, text=short, context=2048,
                           work_dir=no_leftovers)
    assert results[0].status == "failed"
    assert "a context of 2048 needs at least 4096" in results[0].reason


@pytest.mark.toolchain
def test_numbers_without_the_summary_block_come_from_the_chunk_rows(
        cpu: BuildInfo, tiny_llama: Path, tmp_path: Path) -> None:
    """llama.cpp prints its summary only after 100 scored tokens; the last chunk row
    carries the same figures."""
    import subprocess

    base = tmp_path / "base.kld"
    with reference_text() as text:
        subprocess.run([str(cpu.perplexity), "-m", str(tiny_llama), "-f", str(text), "-c", "64",
                        "--chunks", "4", "--kl-divergence-base", str(base)],
                       capture_output=True, check=True, start_new_session=True)
    for _ in range(5):  # llama.cpp's logger may drop the last lines; try again
        run = subprocess.run([str(cpu.perplexity), "-m", str(tiny_llama), "-c", "64", "-t", "1",
                              "--kl-divergence", "--kl-divergence-base", str(base)],
                             capture_output=True, text=True, check=True,
                             start_new_session=True)
        output = run.stderr + "\n" + run.stdout  # rows and summary last, as one log
        if "Same top p:" in output:
            break
    full = parse_divergence_output(output)
    rows_only = parse_divergence_output(output.split("====== Perplexity statistics")[0])
    assert full.mean_kld is not None and rows_only.mean_kld is not None
    assert rows_only.mean_kld == pytest.approx(full.mean_kld, abs=1e-5)
    assert rows_only.top1_agreement == pytest.approx(full.top1_agreement, abs=1e-3)
    assert rows_only.ppl == pytest.approx(full.ppl, rel=1e-6)
    assert rows_only.chunks == full.chunks == 4


# --- the command line ------------------------------------------------------------------------

@pytest.mark.toolchain
def test_cli_prints_a_line_per_build_and_exits_0_when_suspect(
        cpu_bin: Path, tiny_llama: Path, capsys) -> None:
    code = cli_main(["check", "--build", f"cpu={cpu_bin}", "--build", f"wrong={cpu_bin}",
                     "--args", "wrong=--rope-freq-base 1", "--model", str(tiny_llama),
                     "-c", "64", "--chunks", "4"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith("cpu: reference (PPL ")
    assert out[1].startswith("wrong: KLD ") and "top-1 " in out[1] and "SUSPECT" in out[1]


@pytest.mark.toolchain
def test_cli_json_lines_load_back(cpu_bin: Path, tiny_llama: Path, capsys) -> None:
    code = cli_main(["check", "--build", f"a={cpu_bin}", "--build", f"b={cpu_bin}",
                     "--reference", "b", "--model", str(tiny_llama), "-c", "64",
                     "--chunks", "4", "--jsonl"])
    results = [CorrectnessResult.from_json(json.loads(line))
               for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [(r.build, r.status) for r in results] == [("b", "reference"), ("a", "pass")]


@pytest.mark.toolchain
def test_cli_exits_4_when_the_reference_fails(cpu_bin: Path, tiny_llama: Path, tmp_path: Path,
                                              capsys) -> None:
    broken = truncated_copy(tiny_llama, tmp_path / "truncated.gguf")
    code = cli_main(["check", "--build", f"cpu={cpu_bin}", "--model", str(broken)])
    captured = capsys.readouterr()
    assert code == 4  # no comparison (tui.cli.exits)
    assert captured.out.startswith("cpu: FAILED - llama-perplexity exited with code 1")
    assert "llamaduel: the reference build cpu failed" in captured.err


@pytest.mark.parametrize("arguments, message", [
    (["--model", "{model}", "--build", "cpu=/no/such/folder"], "no such folder"),
    (["--model", "/no/such.gguf", "--build", "cpu={cpu}"], "model not found"),
    (["--model", "{model}", "--build", "cpu={cpu}", "--reference", "rocm"],
     "not among the builds"),
    (["--model", "{model}", "--build", "cpu={cpu}", "--text", "/no/such.txt"],
     "text file not found"),
    (["--model", "{model}", "--build", "cpu={cpu}", "--args", "rocm=-ngl 99"],
     "unknown builds"),
    (["--model", "{model}", "--build", "cpu={cpu}", "--min-top1", "150"], "percentage"),
    (["--model", "{model}", "--build", "=x"], "empty name"),
])
@pytest.mark.toolchain
def test_cli_bad_input_is_one_line(cpu_bin: Path, tiny_llama: Path, capsys, arguments,
                                   message) -> None:
    argv = ["check"] + [a.format(model=tiny_llama, cpu=cpu_bin) for a in arguments]
    code = cli_main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("llamaduel: ") and message in err[0]
