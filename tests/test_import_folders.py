"""A published campaign folder, given whole: every file read, every result counted once.

kyuz0's Strix Halo depth curves (read in place from the shared real data) hold, per
toolbox, one llama-bench JSONL file per model and curve, its stderr log, notes, and the
author's ``curve_summary.csv``, which repeats the JSONL results under the toolbox's name and
adds models whose JSONL files are not there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from profiles.importers import ImportProblem, import_files, read_file

REPO = Path(__file__).resolve().parent.parent
KYUZ0 = "kyuz0-strixhalo-depth-curves-2026"
FW1 = ("rocm-7.2.4", "rocm-7.14", "vulkan-radv")  # one host; vulkan-radv-performance ran on another
QWEN_DENSE = "Qwen3.6-27B-UD-Q8_K_XL.gguf"


def recommend(*paths: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "tui.cli", "recommend", *map(str, paths)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def verdict_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.startswith("- ")]


def test_a_campaign_folder_judges_as_its_raw_files_do_and_counts_the_digest_once(realdata):
    root = realdata / KYUZ0
    raw_files = sorted(p for sub in FW1 for p in (root / sub).glob("*.jsonl"))
    from_files = verdict_lines(recommend(*raw_files))
    folders = recommend(*(root / sub for sub in FW1))
    from_folders = verdict_lines(folders)

    # The same verdict, word for word, on every model the raw files hold; the digest's own
    # extra models only add "on MODEL" to the dense lines, which now cover three models.
    for line in (line for line in from_files if " — " in line.partition(": ")[0]):  # the workloads' lines
        workload, _, rest = line.partition(": ")
        assert line in from_folders or f"{workload} on {QWEN_DENSE}: {rest}" in from_folders, line
    for sub in FW1:
        assert f"note: {sub}/curve_summary.csv: 54 of 90 results repeat those of other files read with it " \
               "(counted once)" in folders.stderr
    assert "files hold no llama-bench results (" in folders.stderr  # the logs and notes, in one line each folder

    run = import_files([root / sub for sub in FW1])
    # One build, one name: the digest's "llama-rocm-7.14" rows take the raw files' name,
    # found through the results both hold and the commit both give.
    assert sorted(b.name for b in run.builds) == ["ROCm b10217", "ROCm b10246", "Vulkan"]
    jsonl_rows = sum(len(read_file(p).rows) for p in raw_files if "rocm-7.14" in p.parent.name)
    digest_only = 90 - 54
    assert len(run.results["ROCm b10246"]) == jsonl_rows + digest_only


def test_the_whole_campaign_is_two_machines_with_the_digest_read_by_its_own_columns(realdata):
    root = realdata / KYUZ0
    run = import_files([root])
    machines = {m.machine: sorted(b.name for b in m.builds) for m in run.machines()}
    assert machines["fw1"] == ["ROCm b10217", "ROCm b10246", "Vulkan b10269"]
    assert "fw2" in machines and len(machines) == 2

    digest = read_file(root / "vulkan-radv" / "curve_summary.csv")
    depths = {row.raw["n_depth"] for row in digest.rows}
    assert depths == set(range(0, 65537, 8192))  # the author's "starting_depth", not all at 0
    assert {row.label for row in digest.rows} == {"llama-vulkan-radv"}  # the toolbox names the build


def test_a_file_given_twice_counts_once_and_two_builds_with_equal_numbers_stay_two(tmp_path):
    record = {"build_commit": "abc1234", "build_number": 100, "backends": "ROCm", "gpu_info": "gfx1151",
              "model_filename": "/m/model.gguf", "model_type": "llama 8B Q4_0", "n_prompt": 512, "n_gen": 0,
              "n_depth": 0, "avg_ts": 100.0, "stddev_ts": 1.0, "samples_ts": [99.0, 101.0]}
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(record) + "\n")
    run = import_files([one, one])
    (build,) = run.builds
    assert len(run.results[build.name]) == 1
    assert "one.jsonl: 1 of 1 results repeat those of other files read with it (counted once)" in "\n".join(
        run.problems)

    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({**record, "build_number": 200, "build_commit": "def5678"}) + "\n")
    assert sorted(b.name for b in import_files([one, other]).builds) == ["ROCm b100", "ROCm b200"]


def test_a_folder_without_results_is_one_line_and_fails_when_strict(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("# my runs\n\nNothing measured yet.\n")
    (tmp_path / "notes" / "stderr.log").write_text("ggml_vulkan: Found 1 Vulkan devices:\n")
    run = import_files([tmp_path / "notes"])
    assert not run.builds
    assert list(run.problems) == [f"{tmp_path / 'notes'}: none of its 2 files holds llama-bench results"]
    with pytest.raises(ImportProblem, match="none of its 2 files"):
        import_files([tmp_path / "notes"], strict=True)
