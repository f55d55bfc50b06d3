"""Every llama-bench output format, written by the real llama-bench and by hand where it must be."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from profiles.importers import (
    ImportProblem,
    import_files,
    parse_speed,
    parse_test_name,
    read_file,
)
from profiles.verdict import recommend, recommend_run
from tui.cli import main

FORMATS = ("jsonl", "json", "csv", "md", "sql")


def _bench(bin_dir: Path, model: Path, fmt: str, env: dict | None = None) -> str:
    argv = [str(bin_dir / "llama-bench"), "-m", str(model), "-p", "16", "-n", "4", "-pg", "16,4",
            "-d", "0,32", "-r", "2", "-t", "1", "-o", fmt]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **(env or {})}, start_new_session=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def cpu_outputs(cpu_bin, tiny_llama, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bench")
    out = {}
    for fmt in FORMATS:
        path = folder / f"cpu.{fmt}"
        path.write_text(_bench(cpu_bin, tiny_llama, fmt))
        out[fmt] = path
    return out


def test_every_real_format_reads_the_same_tests(cpu_outputs):
    seen = {}
    for fmt, path in cpu_outputs.items():
        read = read_file(path)
        assert read.format == {"md": "markdown"}.get(fmt, fmt)
        assert not read.problems
        run = import_files([path])
        assert [b.name for b in run.builds] == ["CPU"]
        names = sorted(r.point.name for r in run.results["CPU"])
        seen[fmt] = {r.point.name: r for r in run.results["CPU"]}
        assert names == sorted(["pp16", "tg4", "pp16+tg4", "pp16 @ d32", "tg4 @ d32", "pp16+tg4 @ d32"])
    # Each format is its own llama-bench run, so speeds differ; their shape must not.
    for name, result in seen["jsonl"].items():
        assert len(result.samples_ts) == 2
        assert result.avg_ts == pytest.approx(sum(result.samples_ts) / 2, rel=1e-3)
        for fmt in ("json", "csv", "sql", "md"):
            other = seen[fmt][name]
            assert other.avg_ts > 0 and math.isfinite(other.stddev_ts), (fmt, name)
            assert other.point == result.point
            assert other.raw["backends"] == "CPU"
    assert seen["jsonl"]["pp16"].raw["build_number"] == seen["md"]["pp16"].raw["build_number"]


def test_sql_is_parsed_never_executed(cpu_outputs, tmp_path):
    planted = tmp_path / "planted.db"
    hostile = tmp_path / "hostile.sql"
    hostile.write_text(cpu_outputs["sql"].read_text()
                       + f"\nATTACH DATABASE '{planted}' AS evil;\nCREATE TABLE evil.t(x);\nDROP TABLE llama_bench;\n")
    run = import_files([hostile])
    assert run.result_count == 6
    assert not planted.exists()


def test_compare_llama_bench_sqlite_database(cpu_outputs, tmp_path):
    # What `llama-bench -o sql | sqlite3 llama-bench.sqlite` leaves for compare-llama-bench.py.
    db = tmp_path / "llama-bench.sqlite"
    with sqlite3.connect(db) as connection:
        connection.executescript(cpu_outputs["sql"].read_text())
    run = import_files([db])
    assert run.result_count == 6 and read_file(db).format == "sqlite"
    # Older databases call the table `test`.
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as connection:
        connection.executescript(cpu_outputs["sql"].read_text())
        connection.execute("ALTER TABLE llama_bench RENAME TO test")
    assert import_files([old]).result_count == 6
    empty = tmp_path / "empty.sqlite"
    with sqlite3.connect(empty) as connection:
        connection.execute("CREATE TABLE other(x)")
    with pytest.raises(ImportProblem, match="no llama_bench or test table"):
        read_file(empty)


def test_real_cpu_against_real_vulkan(cpu_bin, vulkan_bin, tiny_llama, tmp_path, capsys):
    (tmp_path / "cpu.jsonl").write_text(_bench(cpu_bin, tiny_llama, "jsonl"))
    (tmp_path / "vulkan.jsonl").write_text(_bench(vulkan_bin, tiny_llama, "jsonl", {"GGML_VK_VISIBLE_DEVICES": "0"}))
    run = import_files([tmp_path / "cpu.jsonl", tmp_path / "vulkan.jsonl"])
    assert sorted(b.name for b in run.builds) == ["CPU", "Vulkan"]
    rec = recommend(run.results, run.failures)
    assert {v.phase for v in rec.verdicts} == {"pp", "tg", "pg"}
    # Lavapipe is a software GPU: llama.cpp's CPU backend is far faster on a 2-layer model.
    pp = rec.verdict("short_dense", "pp")
    assert pp.status in ("winner", "no clear winner") and max(pp.typical_ts, key=pp.typical_ts.get) == "CPU"
    assert main(["recommend", str(tmp_path / "cpu.jsonl"), str(tmp_path / "vulkan.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "| " not in out and "workload" in out and "CPU" in out and "Vulkan" in out


MARKDOWN = """\
$ ./llama-bench -m model.gguf -p 512 -n 128 -pg 4096,128
ggml_vulkan: Found 1 Vulkan devices:
ggml_vulkan: 0 = AMD Radeon Pro VII (RADV VEGA20) (radv) | uma: 0 | fp16: 1 | warp size: 64
| model                          |       size |     params | backend    | ngl |          test |                  t/s |
| ------------------------------ | ---------: | ---------: | ---------- | --: | ------------: | -------------------: |
| llama 8B Q8_0                  |   7.95 GiB |     8.03 B | Vulkan     |  99 |         pp512 |        346.76 ± 0.45 |
| llama 8B Q8_0                  |   7.95 GiB |     8.03 B | Vulkan     |  99 |   pp512 @ d4096 |      255.79 ± 12.26 |
| llama 8B Q8_0                  |   7.95 GiB |     8.03 B | Vulkan     |  99 |         tg128 |                  N/A |
| llama 8B Q8_0                  |   7.95 GiB |     8.03 B | Vulkan     |  99 |  pp4096+tg128 |        182.59 ± 2.66 |
| llama 8B Q8_0                  |   7.95 GiB |     8.03 B | Vulkan     |  99 |         tg128 @ d4096 |   **40.10 ± 0.20** |

build: 1c1409e1 (6865)
main: some stderr noise
| model          |       size |     params | backend    | ngl | test       |              t/s |
| -------------- | ---------: | ---------: | ---------- | --: | ---------- | ---------------: |
| llama 8B Q8_0  |   7.95 GiB |     8.03 B | ROCm       |  99 | pp 512     |   684.11 ± 3.10 |
| llama 8B Q8_0  |   7.95 GiB |     8.03 B | ROCm       |  99 | tg 128     |    nan ± nan |
| llama 8B Q8_0  |   7.95 GiB |     8.03 B | ROCm       |  99 | tg 1
"""


def test_markdown_edge_cases(tmp_path):
    path = tmp_path / "pasted.md"
    path.write_text(MARKDOWN)
    read = read_file(path)
    assert read.format == "markdown"
    assert any("cut table row" in p for p in read.problems)
    run = import_files([path])
    assert sorted(b.name for b in run.builds) == ["ROCm", "Vulkan"]
    vulkan = {r.point.name: r for r in run.results["Vulkan"]}
    assert set(vulkan) == {"pp512", "pp512 @ d4096", "pp4096+tg128", "tg128 @ d4096"}
    assert vulkan["pp512 @ d4096"].stddev_ts == 12.26
    assert vulkan["tg128 @ d4096"].avg_ts == 40.10
    assert vulkan["pp512"].raw["gpu_info"] == "AMD Radeon Pro VII"
    assert vulkan["pp512"].raw["build_number"] == 6865 and vulkan["pp512"].raw["model_size"] == int(7.95 * 2**30)
    assert [f.point.name for f in run.failures["Vulkan"]] == ["tg128"]
    assert [r.point.name for r in run.results["ROCm"]] == ["pp512"]  # old "pp 512" name
    assert [f.point.name for f in run.failures["ROCm"]] == ["tg128"]  # "nan ± nan"
    assert "build_number" not in run.results["ROCm"][0].raw  # the footer belongs to the table above


def test_test_names_and_speed_cells():
    assert parse_test_name("pp512").name == "pp512"
    assert parse_test_name("pp 512").name == "pp512"
    assert parse_test_name("tg128 @ d4096").name == "tg128 @ d4096"
    assert parse_test_name("pp4096+tg128").kind == "pg"
    assert parse_test_name("pg 512,128").name == "pp512+tg128"
    assert parse_test_name("pp512+tg128 @ d8192").depth == 8192
    assert parse_test_name("warmup") is None
    assert parse_speed("1084.19 ± 2.41") == (1084.19, 2.41)
    assert parse_speed("**47.357**")[0] == 47.357
    assert all(math.isnan(v) for v in parse_speed("N/A"))


def _record(**over):
    base = {"build_commit": "abc1234", "build_number": 100, "backends": "ROCm", "gpu_info": "MI50",
            "model_filename": "/m/x.gguf", "model_type": "llama 8B Q8_0", "n_prompt": 512, "n_gen": 0,
            "n_depth": 0, "avg_ts": 100.0, "stddev_ts": 1.0, "samples_ts": [99.0, 101.0]}
    base.update(over)
    return base


def test_jsonl_noise_failures_wrappers_and_truncated_json(tmp_path):
    noisy = tmp_path / "noisy.jsonl"
    noisy.write_text("ggml_cuda_init: found 1 ROCm devices:\n  Device 0: MI50, gfx906\n"
                     + json.dumps(_record()) + "\n"
                     + '{"build_commit": "abc1234", "avg_ts": NaN, "n_prompt": 0, "n_gen": 128, "n_depth": 0}\n'
                     + json.dumps(_record(n_prompt=0, n_gen=128, avg_ts=None)) + "\n"
                     + '{"half a line": \n')
    run = import_files([noisy])
    assert run.result_count == 1 and run.failure_count == 2
    wrapped = tmp_path / "results.jsonl"
    wrapped.write_text(json.dumps({"build": "llama.cpp-hip", "fa": "-fa 1", "bench_raw": _record()}) + "\n"
                       + json.dumps({"build": "llama.cpp-vulkan", "mode": "pp", "value": 512, "bench_raw": None}) + "\n")
    run = import_files([wrapped])
    assert run.results["llama.cpp-hip -fa 1"][0].avg_ts == 100.0
    assert run.failures["llama.cpp-vulkan"][0].point.n_prompt == 512
    cut = tmp_path / "cut.json"
    cut.write_text("[\n" + json.dumps(_record(), indent=2) + ",\n" + json.dumps(_record(n_depth=4096), indent=2)[:90])
    assert import_files([cut]).result_count == 1  # what parses before the cut
    array = tmp_path / "whole.json"
    array.write_text(json.dumps([_record(), _record(n_depth=4096)], indent=2))
    assert import_files([array]).result_count == 2


def test_builds_are_told_apart_by_file_name_when_identical(tmp_path):
    for variant, speed in (("default-hip", 100.0), ("default-rocwmma", 110.0)):
        for model in ("gpt-oss-20b", "llama32-1b"):
            path = tmp_path / f"{model}.{variant}.jsonl"
            path.write_text(json.dumps(_record(model_filename=f"/m/{model}.gguf", avg_ts=speed)) + "\n")
    files = sorted(tmp_path.glob("*.jsonl"))
    run = import_files(files)
    # The file names differ only in the variant; the shared "default" part is dropped.
    assert sorted(b.name for b in run.builds) == ["ROCm hip", "ROCm rocwmma"]
    assert len(run.results["ROCm hip"]) == 2  # same variant across models is one build
    # Different build numbers need no file names.
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.jsonl").write_text(json.dumps(_record()) + "\n")
    (other / "b.jsonl").write_text(json.dumps(_record(build_number=200, build_commit="def5678")) + "\n")
    assert sorted(b.name for b in import_files(sorted(other.glob("*"))).builds) == ["ROCm b100", "ROCm b200"]


def test_two_gpus_with_two_builds_each_are_judged_apart(tmp_path):
    rows = [_record(backends=b, gpu_info=g, build_number=1, avg_ts=s)
            for b, g, s in (("ROCm", "Radeon 8060S", 900.0), ("Vulkan", "Radeon 8060S (RADV)", 500.0),
                            ("CUDA", "RTX 4070 Ti", 5000.0), ("Vulkan", "RTX 4070 Ti", 4000.0))]
    path = tmp_path / "merged.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = import_files([path])
    arenas = run.machines()
    # Within each machine the GPU no longer needs to be in the names.
    assert sorted(sorted(a.results) for a in arenas) == [["CUDA", "Vulkan"], ["ROCm", "Vulkan"]]
    assert sorted(a.machine for a in arenas) == ["RTX 4070 Ti", "Radeon 8060S"]


def test_csv_header_only_and_author_csv(tmp_path):
    header_only = tmp_path / "failed.csv"
    header_only.write_text("build_commit,build_number,backends,model_filename,n_prompt,n_gen,n_depth,avg_ts,stddev_ts\n")
    run = import_files([header_only])
    assert run.result_count == 0 and any("no llama-bench results" in p for p in run.problems)
    with pytest.raises(ImportProblem):
        import_files([header_only], strict=True)
    author = tmp_path / "mine.csv"
    author.write_text("model,backend,GPU,test,speed_t_s\nllama 8B,rocm,8060S,pp512,1084.19\n"
                      "llama 8B,vulkan,8060S,pp512,619.09\nllama 8B,vulkan,8060S,tg128,N/A\n")
    run = import_files([author])
    assert sorted(run.results) == ["ROCm", "Vulkan"] and run.failure_count == 1


@pytest.mark.parametrize("payload", [b"", b"\x00\x01\x02garbage", b"just words\n", b"{\"a\": 1}\n",
                                     b"SQLite format 3\x00" + b"\x00" * 100])
def test_garbage_is_one_line_problem(tmp_path, payload):
    path = tmp_path / "garbage.bin"
    path.write_bytes(payload)
    run = import_files([path])
    assert run.result_count == 0
    assert run.problems and all("\n" not in p for p in run.problems)


def test_progress_lines_banners_and_crashes_in_a_real_log(cpu_bin, tiny_llama, tmp_path):
    """llama-bench's own --progress output with the table: every row kept, -r from the progress."""
    argv = [str(cpu_bin / "llama-bench"), "-m", str(tiny_llama), "-p", "16", "-n", "4", "-d", "0,32",
            "-r", "3", "-t", "1", "--progress"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, start_new_session=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    log = tmp_path / "cpu-run.log"
    log.write_text(f"$ {' '.join(argv)}\n" + done.stderr + done.stdout)  # stderr first, as a terminal shows
    run = import_files([log])
    assert [b.name for b in run.builds] == ["CPU"] and run.failure_count == 0
    results = {r.point.name: r for r in run.results["CPU"]}
    assert set(results) == {"pp16", "tg4", "pp16 @ d32", "tg4 @ d32"}
    assert all(r.raw["import_repetitions"] == 3 for r in results.values())
    # Interleaved: progress lines between the rows, as llama-bench writes them with 2>&1.
    mixed = tmp_path / "mixed.log"
    lines = done.stdout.splitlines()
    mixed.write_text("\n".join([*lines[:3], "llama-bench: benchmark 2/4: starting", "llama-bench: benchmark 2/4: generation run 3/3", *lines[3:]]) + "\n")
    assert import_files([mixed]).result_count == 4


LOG_CRASH = """\
ggml_vulkan: Found 1 Vulkan devices:
ggml_vulkan: 0 = AMD Radeon 8060S Graphics (AMD open-source driver) | uma: 1 | fp16: 1 | warp size: 64
| model                          |       size |     params | backend    | ngl | fa |            test |                  t/s |
| ------------------------------ | ---------: | ---------: | ---------- | --: | -: | --------------: | -------------------: |
/lib64/libggml-base.so.0(ggml_print_backtrace+0x1eb) [0x7f516926783b]
terminate called after throwing an instance of 'vk::DeviceLostError'
  what():  vk::Queue::submit: ErrorDeviceLost
✖ [vulkan_amdvlk] Model__fa1 __longctx32768 failed (exit 134)
"""


def test_a_crashed_log_is_a_failure_of_its_build_and_test(tmp_path):
    log = tmp_path / "Model__vulkan_amdvlk__fa1__longctx32768.log"
    log.write_text(LOG_CRASH)
    read = read_file(log)
    assert read.format == "log" or read.format == "markdown"
    run = import_files([log])
    (failure,) = run.failures["Vulkan"]
    assert failure.reason == "exit 134, abort: vk::Queue::submit: ErrorDeviceLost"
    assert (failure.point, failure.depth, failure.exit_code) == (None, 32768, 134)
    assert run.build("Vulkan").gpu.startswith("AMD Radeon 8060S")
    # A shell script that prints "error:" lines is not a crashed run.
    script = tmp_path / "run.sh"
    script.write_text('#!/bin/bash\necho "error: model not found" >&2\nexit 1\n')
    assert import_files([script]).failure_count == 0


def test_header_only_csv_beside_the_stderr_that_says_why(tmp_path):
    csv_file = tmp_path / "qwen-b8460-hip-prefill-r5.csv"
    csv_file.write_text("build_commit,build_number,backends,model_filename,n_prompt,n_gen,n_depth,avg_ts,stddev_ts\n")
    (tmp_path / "qwen-b8460-hip-prefill-r5.stderr").write_text(
        "ggml_cuda_init: found 1 ROCm devices:\n  Device 0: AMD Radeon Graphics, gfx1151\n"
        "main: error: failed to load model '/models/qwen.gguf'\n")
    run = import_files(sorted(tmp_path.iterdir()))
    (failure,) = [f for fs in run.failures.values() for f in fs]
    assert failure.phase == "pp" and failure.model == "qwen.gguf"
    assert "failed to load model" in failure.reason
    (build,) = run.builds
    assert (build.backend, build.build_number) == ("ROCm", 8460)


def test_build_lines_belong_to_their_own_table_and_section(tmp_path):
    doc = tmp_path / "notes.md"
    doc.write_text("""\
## Box one

build: aaaaaaa (100)
| model | size | params | backend | ngl | test | t/s |
| --- | --: | --: | --- | --: | --: | --: |
| llama 8B Q8_0 | 7.95 GiB | 8.03 B | ROCm | 99 | pp512 | 900.00 ± 3.00 |

## Box two

| model | size | params | backend | ngl | test | t/s |
| --- | --: | --: | --- | --: | --: | --: |
| llama 8B Q8_0 | 7.95 GiB | 8.03 B | ROCm | 99 | pp512 | 500.00 ± 2.00 |
""")
    run = import_files([doc])
    numbers = sorted((r.avg_ts, r.raw.get("build_number")) for rs in run.results.values() for r in rs)
    # The build line printed before the first table is that table's; the other table has none.
    assert numbers == [(500.0, None), (900.0, 100)]
    # The same build's table repeated under two headings: two machines, never compared.
    same = tmp_path / "same.md"
    same.write_text(doc.read_text().replace("build: aaaaaaa (100)\n", ""))
    assert sorted(m.machine for m in import_files([same]).machines()) == ["Box one", "Box two"]


def test_one_binary_two_devices_are_two_contenders(tmp_path):
    rows = [_record(backends="ROCm,Vulkan", devices=dev, avg_ts=speed, samples_ts=[speed * 0.99, speed * 1.01, speed])
            for dev, speed in (("ROCm0", 1000.0), ("Vulkan0", 700.0))]
    path = tmp_path / "both.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = import_files([path])
    assert [b.name for b in run.builds] == ["ROCm,Vulkan"]
    rec = recommend_run(run.records())
    assert {c.label: c.backend for c in rec.contenders} == {"ROCm0 (ROCm,Vulkan)": "ROCm",
                                                             "Vulkan0 (ROCm,Vulkan)": "Vulkan"}
    assert rec.verdict("short_dense", "pp").winner == "ROCm0 (ROCm,Vulkan)"


def test_repeated_runs_of_one_configuration_are_pooled_not_split(tmp_path):
    path = tmp_path / "nightly.csv"
    header = "build_commit,build_number,backends,model_filename,n_ubatch,n_prompt,n_gen,n_depth,avg_ts,stddev_ts"
    lines = [header] + [f"abc,1,ROCm,m.gguf,512,512,0,0,{1000 + i},1.0" for i in range(150)]
    path.write_text("\n".join(lines) + "\n")
    (result,) = import_files([path]).results["ROCm"]
    # 150 runs of one test: each run's mean is one repetition.
    assert len(result.samples_ts) == 150 and result.raw["import_repetitions"] == 150
    assert result.avg_ts == pytest.approx(1074.5)
