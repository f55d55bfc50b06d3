"""llama-bench output as people publish it: glued warnings, tables without headers or separators,
lost "±", crashes that cut a table, repeated CSV headers, files under any folder name.

Each case reads a published file from ``tests/data/realworld`` or ``../shared/realdata``. Where no
published file shows the case, the test builds it from a published one in the way the case
arises (the docstring says how and why) and checks that the result is what the untouched file
gives.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from profiles.importers import import_files, read_file
from profiles.importers.rows import SUMMARY_KEY
from profiles.verdict import recommend_run

WORLD = Path(__file__).parent / "data" / "realworld"
MINISTRAL = WORLD / "kyuz0-ministral-bf16-logs"
ROCM_LOG = MINISTRAL / "Ministral-3-14B-Instruct-2512-BF16__rocm-7_2_3__fa1.log"
THEROCK = WORLD / "lhl-therock-gfx1151-rocm-error-before-any-row" / "llama-bench-hip-gfx1151.log"
# llama-bench's own warning, printed with LOG_WRN and no newline (llama-bench.cpp, -mmp/--mmap);
# kyuz0's published .stderr.log files (rocm-7.2.4 toolbox_performance, 2026-08) end on it unterminated.
DEPRECATED = ("DEPRECATED: -mmp and --mmap are deprecated in favour of --load-mode. "
              "Please use --load-mode mmap instead.")
# The debugger ggml's abort handler attaches, as printed in the TheRock log above.
GDB_LINES = ("[New LWP 741090]", "[Thread debugging using libthread_db enabled]",
             'Using host libthread_db library "/lib64/libthread_db.so.1".',
             "0x00007f3597b1aef3 in __GI___wait4 () from /lib64/libc.so.6")


def _results(path: Path) -> list[tuple[str, float, float]]:
    run = import_files([path])
    return sorted((r.point.name, r.avg_ts, r.stddev_ts) for rs in run.results.values() for r in rs)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------
# Reading what people publish


def test_header_glued_to_a_warning_reads_like_the_clean_log(tmp_path):
    """With ``-mmp 0 -o md 2>&1`` the unterminated warning and the header share a line. No
    published log shows it (the toolbox logs that carry the warning are -o jsonl runs), so the
    published ROCm log gets the warning in front of its header, as the terminal would print it."""
    lines = ROCM_LOG.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| model"))
    lines[at] = DEPRECATED + lines[at]
    glued = _write(tmp_path / ROCM_LOG.name, "\n".join(lines) + "\n")
    assert _results(glued) == _results(ROCM_LOG) and len(_results(ROCM_LOG)) == 2
    row = next(iter(import_files([glued]).results.values()))[0]
    assert row.raw["use_mmap"] == 0 and row.raw["flash_attn"] == 1  # its settings, not text


def test_the_warning_glued_to_jsonl_json_and_csv_output(tmp_path, realdata):
    """The same unterminated warning with ``-o jsonl``, ``-o json`` and ``-o csv`` and 2>&1: it
    joins the first record, the opening "[" or the CSV header. Built from published files
    (the H100 jsonl, a hogeheer CSV), since published copies with the glue were not found."""
    jsonl = next((realdata / "h100-cuda-vs-vulkan").glob("*.jsonl"))
    records = [json.loads(line) for line in jsonl.read_text().splitlines() if line.startswith("{")]
    glued_jsonl = _write(tmp_path / "glued.jsonl", DEPRECATED + jsonl.read_text())
    as_array = _write(tmp_path / "glued.json", "ggml_cuda_init: found 1 CUDA devices:\n" + DEPRECATED
                      + json.dumps(records, indent=2) + "\n")
    assert _results(glued_jsonl) == _results(jsonl) == _results(as_array) and len(_results(jsonl)) == len(records)
    csv_path = (realdata / "hogeheer-strixhalo-hip-vs-vulkan-csv" / "hip-vs-vulkan-crossover-b9010-vs-b8460"
                / "qwen36-b8460-hip-prefill-r5.csv")
    glued_csv = _write(tmp_path / "glued.csv", DEPRECATED + csv_path.read_text())
    assert _results(glued_csv) == _results(csv_path)
    (build,) = import_files([glued_csv]).builds
    assert build.build_number == 8460 and build.commit  # the first column kept its name


def test_rows_between_warnings_without_separator_and_a_second_table_without_header(tmp_path):
    """Progress lines and warnings between rows, no separator row, and the rest of a table
    pasted after a remark without its header: the rows of the published log, no more, no less."""
    lines = ROCM_LOG.read_text().splitlines()
    header, _separator, pp, tg = lines[2:6]
    text = "\n".join([*lines[:2], header, "llama-bench: benchmark 1/2: starting", pp,
                      "ggml_vulkan: warning: something printed mid-table", "",
                      "(the second test, pasted from another terminal:)", tg, *lines[6:]])
    assert _results(_write(tmp_path / "pasted.md", text)) == _results(ROCM_LOG)


def test_rows_that_drop_their_closing_bar_are_rows_while_the_table_goes_on(tmp_path):
    """Hand-edited tables often drop the closing "|" of each row; only the last row of a table
    that stops there (a crash, a cut paste) is a cut row."""
    lines = ROCM_LOG.read_text().splitlines()
    sloppy = [line.rstrip().removesuffix("|").rstrip() if i in (4, 5) else line for i, line in enumerate(lines)]
    run = import_files([_write(tmp_path / "sloppy.md", "\n".join(sloppy))])
    assert sorted(r.point.name for rs in run.results.values() for r in rs) == ["pp512", "tg128"]
    assert run.failure_count == 0 and not run.problems


def test_plus_minus_lost_to_encoding_reads_the_same_spreads(tmp_path):
    """"±" saved as Latin-1 then read as UTF-8 ("Â±"), turned into "+" or into "�": no published
    copy found, so the published mi50 README is mangled each way."""
    source = WORLD / "mixa3607-mi50-rocm-versions" / "readme.md"
    original = _results(source)
    assert len(original) > 20 and all(sd > 0 for _, _, sd in original)
    for mangled in ("+", "Â±", "\ufffd", "+/-"):
        copy = _write(tmp_path / f"readme-{len(mangled)}-{ord(mangled[0])}.md",
                      source.read_text().replace("±", mangled))
        assert _results(copy) == original, mangled


def test_newer_columns_are_settings_and_key_value_tables_are_not_results(tmp_path):
    """Columns of llama-bench 2026 (``lm``, ``fitt``, ``n_cpu_moe``, ``dev``, ``sm``) and a
    system table (``| **RAM** | 126 GiB |``) after the results, the way reports paste them;
    the numbers are the published ROCm log's."""
    text = f"""{ROCM_LOG.read_text().splitlines()[1]}
| model             |       size |     params | backend | ngl | n_cpu_moe | sm    | dev   | lm   | fitt |  test |           t/s |
| ----------------- | ---------: | ---------: | ------- | --: | --------: | ----- | ----- | ---- | ---: | ----: | ------------: |
| mistral3 14B BF16 |  25.16 GiB |    13.51 B | ROCm    |  99 |         4 | row   | ROCm0 | none | 1024 | pp512 | 801.06 ± 9.05 |

build: 1a68ec937 (9193)

| Part        | Value   |
| ----------- | ------- |
| **RAM**     | 126 GiB |
| **Kernel**  | 6.18    |
| pp512       | 12.5    |
"""
    read = read_file(_write(tmp_path / "report.md", text))
    (row,) = read.rows
    assert (row.raw["n_cpu_moe"], row.raw["split_mode"], row.raw["devices"], row.raw["load_mode"],
            row.raw["fit_target"]) == (4, "row", "ROCm0", "none", 1024)
    assert "import_settings" not in row.raw and not read.problems


def test_printed_summaries_are_marked_and_raw_records_are_not(realdata):
    (row, *_) = next(iter(import_files([ROCM_LOG]).results.values()))
    assert row.raw[SUMMARY_KEY] is True  # "801.06 ± 9.05": the count of runs is not printed
    jsonl = next((realdata / "h100-cuda-vs-vulkan").glob("*.jsonl"))
    assert all(SUMMARY_KEY not in r.raw for rs in import_files([jsonl]).results.values() for r in rs)


def test_repeated_csv_headers_read_like_the_files_apart(tmp_path, realdata):
    """Two published llama-bench CSVs appended into one (``cat a.csv b.csv``, or ``-o csv >>``):
    the second header is a header, not a failed row."""
    folder = realdata / "hogeheer-strixhalo-hip-vs-vulkan-csv" / "hip-vs-vulkan-crossover-b9010-vs-b8460"
    first, second = folder / "qwen36-b8460-hip-prefill-r5.csv", folder / "qwen36-b8460-hip-tg128-r5.csv"
    both = _write(tmp_path / "appended.csv", first.read_text() + second.read_text())
    apart = import_files([first, second])
    together = import_files([both])
    assert together.failure_count == 0 and together.result_count == apart.result_count > 0
    key = sorted((r.point.name, r.avg_ts) for rs in apart.results.values() for r in rs)
    assert sorted((r.point.name, r.avg_ts) for rs in together.results.values() for r in rs) == key


def test_a_report_with_several_tables_and_a_csv_block_is_one_build():
    """Five tables with differing columns under two model headings, no build line, and the
    same run's CSV pasted below: one build, four settings, the CSV's build and model file."""
    path = WORLD / "m4pro-metal-qwen35-report-tables-and-csv" / "llama-bench-report.md"
    run = import_files([path])
    (build,) = run.builds
    assert (build.build_number, build.commit, build.gpu) == (9010, "d05fe1d7d", "Apple M4 Pro")
    results = run.results[build.name]
    dense = sorted((r.point.name, round(r.avg_ts, 2)) for r in results if r.raw["model_type"].startswith("qwen35 27B"))
    # pp4096 once (the table's row and the CSV's two runs are one test), the CSV's depth curve, tg1024.
    assert [name for name, _ in dense] == ["pp16384", "pp32768", "pp4096", "pp65536", "pp8192", "tg1024"]
    assert dict(dense)["pp4096"] == round((97.302719 + 97.053144) / 2, 2)
    assert {r.raw.get("model_filename") for r in results if r.raw["model_type"].startswith("qwen35 27B")} == {
        "/Users/darvin/models/Qwen3.6-27B-Q4_K_S.gguf"}
    rec = recommend_run(run.machines()[0].records())
    assert len(rec.contenders) == 4 and {c.build for c in rec.contenders} == {build.name}  # four settings
    assert rec.verdict("moe", "tg", "short").status == "tie"  # 41.64 vs 41.63


# ---------------------------------------------------------------------------------------
# Runs that died


def test_rocm_error_before_any_row_fails_the_tests_the_command_asked_for():
    run = import_files([THEROCK])
    assert run.result_count == 0 and [b.backend for b in run.builds] == ["ROCm"]
    failures = run.failures["ROCm"]
    assert sorted(f.test for f in failures) == ["pp512", "tg128"]  # llama-bench's defaults: no -p/-n
    assert all(f.reason == "ROCm error" and f.model == "llama-2-7b.Q4_0.gguf" for f in failures)


def test_a_ggml_assert_with_its_command_line_fails_that_contender():
    """llama-bench b9204 with an MTP model: the command line and the assert, nothing else published."""
    run = import_files([WORLD / "llama.cpp-issue23285-ggml-assert-mtp" / "llama-bench-vulkan-b9204.log"])
    (build,) = run.builds
    assert (build.backend, build.build_number, run.result_count) == ("Vulkan", 9204, 0)
    failures = run.failures[build.name]
    assert sorted(f.test for f in failures) == ["pp512", "tg128"]
    assert all(f.reason == "GGML_ASSERT(buffer) failed" for f in failures)
    # The contender is the build with the command's settings: -ngl 0 makes it a CPU/GPU split.
    assert all(dict(f.settings) == {"n_gpu_layers": 0, "flash_attn": 1, "use_mmap": 1} for f in failures)
    assert {f.model for f in failures} == {"Qwen3.5-9B-UD-Q4_K_XL.gguf"}


def test_recommend_on_crashed_runs_alone_says_what_failed():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-m", "tui.cli", "recommend", str(THEROCK)], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip().endswith("llama-bench-hip-gfx1151.log: ROCm failed pp512, tg128 (ROCm error)")
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_header_then_a_silent_exit_fails_the_default_tests():
    """llama.cpp b5215 on Windows printed its header and returned to the prompt: no row, no error."""
    run = import_files([WORLD / "llama.cpp-issue13169-header-then-silent-exit" / "llama-bench-cpu-avx512-b5215.log"])
    (build,) = run.builds
    assert (build.backend, build.build_number, run.result_count) == ("CPU", 5215, 0)  # from the file's name
    failures = run.failures[build.name]
    assert sorted(f.test for f in failures) == ["pp512", "tg128"]
    assert {f.reason for f in failures} == {"no result and no error: the log stops after the table header"}
    assert {f.model for f in failures} == {"gemma-3-12b-it-q4_0_s.gguf"}  # a Windows path, not shell escapes


def test_a_table_cut_by_a_crash_fails_that_test_and_the_ones_its_sibling_ran(tmp_path):
    """A report with a Vulkan table and a ROCm table cut in the middle of its first row by an
    abort, then the debugger's lines and no build line. No such published report was found; this
    one joins the published RADV and ROCm logs of one model and cuts the ROCm row where a
    crash in the next test leaves a block-buffered stdout."""
    radv = (MINISTRAL / "Ministral-3-14B-Instruct-2512-BF16__vulkan_radv__fa1.log").read_text().splitlines()
    rocm = ROCM_LOG.read_text().splitlines()
    cut = rocm[4][: rocm[4].index("801.06") + len("801.06")]
    report = "\n".join(["## Vulkan RADV", *radv, "", "## ROCm 7.2.3", *rocm[:4], cut, *GDB_LINES])
    run = import_files([_write(tmp_path / "report.md", report)])
    assert [r.point.name for rs in run.results.values() for r in rs] == ["pp512", "tg128"]
    (rocm_build,) = [b for b in run.builds if b.backend == "ROCm"]
    failures = run.failures[rocm_build.name]
    assert sorted(f.test for f in failures) == ["pp512", "tg128"]  # the cut row, and the test after it
    assert all("crashed" in f.reason and f.settings.get("n_gpu_layers") == 99 for f in failures)
    assert all(f.model == "mistral3 14B BF16" for f in failures)
    rec = recommend_run(run.machines()[0].records())
    stability = {s.build: s for s in rec.stability}
    assert not stability[rocm_build.name].stable and stability[rocm_build.name].failures == 2
    assert "no failures" not in stability[rocm_build.name].note


def test_failed_to_load_model_fails_the_tests_its_sibling_ran(realdata):
    """hogeheer's ROCm b8460 gemma4 prefill CSV is a header and nothing else; its .stderr says the
    model failed to load. Beside the Vulkan prefill CSV of the same model, it failed those tests."""
    folder = realdata / "hogeheer-strixhalo-hip-vs-vulkan-csv" / "hip-vs-vulkan-crossover-b9010-vs-b8460"
    run = import_files(sorted(folder.glob("*.csv")))
    vulkan = sorted(r.point.name for r in run.results["Vulkan"] if "gemma" in r.raw.get("model_filename", ""))
    (rocm,) = [b.name for b in run.builds if b.backend == "ROCm"]
    failures = run.failures[rocm]
    assert sorted(f.test for f in failures) == [n for n in vulkan if n.startswith("pp")] and len(failures) == 4
    assert all("failed to load model" in f.reason and f.model == "gemma-4-26B-A4B-it-UD-Q4_K_M.gguf" for f in failures)
    stability = {s.build: s for s in recommend_run(run.machines()[0].records()).stability}
    assert stability[rocm].failures == 4 and not stability[rocm].stable


def test_a_wrapper_saying_rc_0_does_not_hide_a_crash(tmp_path):
    """A wrapper's index that says the run exited 0 beside a log that shows the crash."""
    log = _write(tmp_path / "llama-bench-hip-gfx1151.log", THEROCK.read_text())
    index = _write(tmp_path / "index.txt", f"{log.name} rc=0\n")
    run = import_files([index, log])
    assert run.failure_count == 2 and run.result_count == 0
    assert any("index.txt" in p for p in run.problems)  # not results, said in one line


def test_a_truncated_paste_is_not_a_crash(tmp_path):
    """A table cut by the page it was copied from (the published log, its last row cut) with
    nothing after it: a problem line and the rows before it, no failure claimed."""
    lines = ROCM_LOG.read_text().splitlines()
    cut = _write(tmp_path / "excerpt.md", "\n".join([*lines[:5], lines[5][:60]]))
    run = import_files([cut])
    assert run.failure_count == 0 and [r.point.name for rs in run.results.values() for r in rs] == ["pp512"]
    assert any("cut table row" in p for p in run.problems)


# ---------------------------------------------------------------------------------------
# Any path

AWKWARD = "bench runs #3 ? 50% done"


def test_every_format_reads_from_a_folder_name_with_spaces_hash_question_mark_percent(tmp_path, realdata):
    folder = tmp_path / AWKWARD / "more %20 #x"
    folder.mkdir(parents=True)
    hogeheer = realdata / "hogeheer-strixhalo-hip-vs-vulkan-csv" / "hip-vs-vulkan-crossover-b9010-vs-b8460"
    sources = [ROCM_LOG, THEROCK, next((realdata / "h100-cuda-vs-vulkan").glob("*.jsonl")),
               hogeheer / "qwen36-b8460-hip-prefill-r5.csv",
               hogeheer / "gemma4-26b-b8460-hip-prefill-r5.csv", hogeheer / "gemma4-26b-b8460-hip-prefill-r5.stderr"]
    for source in sources:
        (folder / source.name).write_bytes(source.read_bytes())
    for source in sources:
        if source.suffix == ".stderr":
            continue
        here, there = import_files([source]), import_files([folder / source.name])
        assert (there.result_count, there.failure_count) == (here.result_count, here.failure_count), source.name
        assert here.result_count + here.failure_count > 0 and not there.problems, source.name
    database = folder / "llama-bench.sqlite"
    _sqlite_from_csv(hogeheer / "qwen36-b8460-hip-prefill-r5.csv", database)
    from_db = import_files([database])
    assert not from_db.problems and from_db.result_count == import_files(
        [hogeheer / "qwen36-b8460-hip-prefill-r5.csv"]).result_count > 0


def test_recommend_reads_a_database_under_an_awkward_folder(tmp_path, realdata):
    folder = tmp_path / AWKWARD
    folder.mkdir()
    csv_path = realdata / "hogeheer-strixhalo-hip-vs-vulkan-csv" / "hip-vs-vulkan-crossover-b9010-vs-b8460" / \
        "qwen36-b8460-hip-prefill-r5.csv"
    database = folder / "runs.sqlite"
    _sqlite_from_csv(csv_path, database)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-m", "tui.cli", "recommend", str(database), "--format", "csv"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "no llama_bench or test table" not in done.stderr and "ROCm" in done.stdout


def _sqlite_from_csv(csv_path: Path, database: Path) -> None:
    """compare-llama-bench's database layout (table llama_bench, llama-bench's columns)."""
    import csv

    with open(csv_path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [r for r in reader if r]
    with sqlite3.connect(database) as connection:
        connection.execute(f"CREATE TABLE llama_bench ({', '.join(f'{c} TEXT' for c in header)})")
        connection.executemany(f"INSERT INTO llama_bench VALUES ({', '.join('?' * len(header))})", rows)
    connection.close()
    assert not math.isnan(float(rows[0][header.index("avg_ts")]))


def test_a_path_typed_into_the_import_field_may_hold_spaces_hash_and_percent(tmp_path):
    from tui.screens.profile_actions import typed_paths

    folder = tmp_path / AWKWARD
    folder.mkdir()
    log, other = folder / ROCM_LOG.name, folder / "radv #2.log"
    log.write_bytes(ROCM_LOG.read_bytes())
    other.write_bytes((MINISTRAL / "Ministral-3-14B-Instruct-2512-BF16__vulkan_radv__fa1.log").read_bytes())
    assert typed_paths(f"  {log}  ") == [log]
    assert typed_paths(f'"{log}" "{other}"') == [log, other]
    assert import_files(typed_paths(f"'{log}' '{other}'")).result_count == 4
