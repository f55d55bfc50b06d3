"""``serve-bench --preset server-cliffs`` on the real CPU and Vulkan-on-lavapipe builds.

The preset sweeps the context the server allocates x its KV cache type x its slots, at one
short prompt and one stream. Small here: two contexts (4K, and 8M tokens that cannot fit),
f16 and q4_0, one and two slots. Each build's llama-server runs as it is, on a box of 4 GB
of address space (``ulimit -v``), so an 8M-token cache fails at once, with the server's own
words (the CPU build: ``insufficient memory``; the Vulkan build aborts on the buffer it
could not get), and the duel goes on. The model has wide K/V rows (512 values a layer,
4 KiB of f16 cache a token) and a 32K training context, so the context is really
allocated, not capped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends.journal.serve import LevelFinished, ServerFailed, ServerStarting
from backends.server import read_journal
from profiles.disagreement import disagreement
from profiles.store import ProfileStore

REPO = Path(__file__).resolve().parent.parent
MEMORY_KB = 4_000_000
FITS, TOO_BIG = 4096, 8 * 1024 * 1024


@pytest.fixture(scope="module")
def wide_kv(tmp_path_factory) -> Path:
    from backends.tooling.synth import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("models") / "wide-kv.gguf", embd=512, heads=8,
                            heads_kv=8, ff=128, context=32768, weight_type="F16")


def small_box(build: Path, folder: Path) -> Path:
    """The build's tools, its llama-server started under a 4 GB address-space limit."""
    folder.mkdir()
    # Scripts, not links: a build's probe is cached by its llama-bench's resolved path.
    for tool, limit in (("llama-bench", ""), ("llama-completion", ""),
                        ("llama-server", f"ulimit -v {MEMORY_KB}\n")):
        script = folder / tool
        script.write_text(f"#!/bin/sh\n{limit}exec {build / tool} \"$@\"\n")
        script.chmod(0o755)
    return folder


def test_server_cliffs_on_cpu_and_vulkan(cpu_bin, vulkan_bin, wide_kv, tmp_path):
    journal, store = tmp_path / "journal.jsonl", tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LLAMADUEL_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli", "serve-bench", "--preset", "server-cliffs",
         "--build", f"cpu={small_box(cpu_bin, tmp_path / 'cpu')}",
         "--build", f"vulkan={small_box(vulkan_bin, tmp_path / 'vulkan')}", "--model", str(wide_kv),
         "--ctx-size", f"{FITS},{TOO_BIG}", "--cache-types", "f16,q4_0", "--parallel", "1,2",
         "-p", "96", "-n", "8", "--requests", "1", "--turns", "1", "-t", "1", "--journal", str(journal),
         "--save", "cliffs", "--store", str(store)],
        check=False, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 3, done.stderr  # partial: some levels failed, the rest compared
    assert "Traceback" not in done.stderr

    events = read_journal(journal)
    levels = [e for e in events if isinstance(e, LevelFinished)]
    assert len(levels) == 16  # 2 contexts x 2 cache types x 2 slot counts, per build
    for level in levels:
        lv, s = level.summary.level, level.summary
        assert (lv.ctx_size, lv.cache_type, lv.slots) != (0, "", 0)
        if lv.ctx_size == TOO_BIG:  # the server's own words for the allocation it could not make
            words = ("insufficient memory",) if level.contender == "cpu" else ("allocat", ".cpp:")
            assert level.failed and s.reason and any(w in s.reason for w in words), s.reason
        else:
            assert not level.failed and s.requests == 1 and s.total_tokens == 8 and s.reason is None
            assert s.gen_tps.mean and s.total_tps
    starts = {e.level: list(e.argv) for e in events if isinstance(e, ServerStarting)}
    for key, argv in starts.items():
        level = next(lv.summary.level for lv in levels if lv.summary.level.key == key)
        assert argv[argv.index("-c") + 1] == str(level.ctx_size)
        assert argv[argv.index("--parallel") + 1] == str(level.slots)
        assert argv[argv.index("-ctk") + 1] == argv[argv.index("-ctv") + 1] == level.cache_type
    failed = [e for e in events if isinstance(e, ServerFailed)]
    assert len(failed) == 8 and all(e.phase == "start" for e in failed)

    table = done.stdout
    for level in levels:
        if level.summary.reason:  # every failed level's reason, once, under the table
            line = f"  {level.contender} {level.summary.level.key}: {level.summary.reason}"
            assert table.count(line) == 1, line
    assert table.splitlines()[0].split()[:4] == ["build", "c", "shape", "server"]

    profile = ProfileStore(store).load("cliffs")
    assert len(profile.serving_verdicts) == 8
    for verdict in profile.serving_verdicts:
        assert verdict.setting and verdict.workload.startswith("serving c=1 · ")
        if f"{TOO_BIG // 1024}K context" in verdict.setting:
            assert verdict.status == "no results" and len(verdict.failures) == 2
        else:
            assert verdict.winner in ("cpu", "vulkan") and not verdict.failures
    saved = profile.serving or {}
    assert sum(len(c["levels"]) for c in saved["contenders"].values()) == 16
    assert {g["cache_type"] for c in saved["contenders"].values() for g in c["gaps"]} == {"f16", "q4_0"}
    # Where the server and llama-bench part ways (on these noisy one-request levels, at
    # times nowhere), the profile and the output say it in the same sentence.
    assert profile.serving_disagreement == disagreement(saved, profile.serving_verdicts)
    said = f"Server against llama-bench: {profile.serving_disagreement}"
    assert (said in table) == bool(profile.serving_disagreement)
