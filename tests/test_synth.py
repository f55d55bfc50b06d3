"""The GGUF generator: files the real llama.cpp tools load and run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import gguf
import numpy as np
import pytest

from backends.models import read_header, read_model
from backends.tooling import synth

PROMPT = "hello world, ça va? 123 — ünïcödé"


def _bench(folder, model, env=None):
    run = subprocess.run(
        [str(folder / "llama-bench"), "-m", str(model), "-p", "16", "-n", "4", "-r", "1",
         "-o", "jsonl"],
        capture_output=True, text=True, env=env, start_new_session=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return [json.loads(line) for line in run.stdout.splitlines()]


def _complete(folder, model, env=None, extra=48):
    """The prompt echo and the next ``extra`` bytes of greedy text from llama-completion.

    llama.cpp prints through a log thread it never flushes at exit, so a run that ends by
    itself can lose its text. Generation here never ends by itself (-n -1): the text is read
    while the tool is alive, then the tool is killed.
    """
    import signal
    import time

    process = subprocess.Popen(
        [str(folder / "llama-completion"), "-m", str(model), "-p", PROMPT, "-n", "-1",
         "-no-cnv", "--temp", "0", "--seed", "1"],  # -no-cnv: plain completion, no chat loop
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
        start_new_session=True,
    )
    os.set_blocking(process.stdout.fileno(), False)
    wanted = PROMPT.encode()
    output = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            chunk = process.stdout.read() or b""
            output += chunk
            at = output.find(wanted)
            if at >= 0 and len(output) >= at + len(wanted) + extra:
                break
            if process.poll() is not None and not chunk:
                break
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    at = output.find(wanted)
    assert at >= 0, f"no prompt echo in {output[-300:]!r}"
    # Random weights pick byte tokens freely: the new text need not be valid UTF-8.
    return output[at:at + len(wanted) + extra].decode("utf-8", "replace")


@pytest.mark.parametrize("weight_type", ["F32", "F16", "Q8_0"])
def test_tiny_models_run_in_llama_bench(cpu_bin, tmp_path, weight_type):
    for writer in (synth.write_tiny_llama, synth.write_tiny_moe):
        path = writer(tmp_path / f"{writer.__name__}-{weight_type}.gguf",
                      weight_type=weight_type)
        records = _bench(cpu_bin, path)
        assert [(r["n_prompt"], r["n_gen"]) for r in records] == [(16, 0), (0, 4)]
        assert all(r["avg_ts"] > 0 for r in records)
        assert records[0]["model_n_params"] == read_model(path).parameters
        arch = "llama" if writer is synth.write_tiny_llama else "qwen3moe"
        assert records[0]["model_type"].startswith(arch)


def test_completion_takes_any_text(cpu_bin, tiny_llama, tiny_moe):
    for model in (tiny_llama, tiny_moe):
        text = _complete(cpu_bin, model)
        # The prompt comes back whole (byte fallback covers every character), then new text.
        assert PROMPT in text
        assert len(text.split(PROMPT, 1)[1]) > 0


def test_greedy_completion_is_repeatable(cpu_bin, tiny_llama):
    assert _complete(cpu_bin, tiny_llama) == _complete(cpu_bin, tiny_llama)


def test_vulkan_build_runs_tiny_models(vulkan_bin, tiny_llama, tiny_moe):
    env = {**os.environ, "GGML_VK_VISIBLE_DEVICES": "0"}
    for model in (tiny_llama, tiny_moe):
        records = _bench(vulkan_bin, model, env)
        assert {r["backends"] for r in records} == {"Vulkan"}
        assert "llvmpipe" in records[0]["gpu_info"]
        assert PROMPT in _complete(vulkan_bin, model, env)


def test_same_seed_same_file_other_seed_other_weights(tmp_path):
    a = synth.write_tiny_moe(tmp_path / "a.gguf", seed=3)
    b = synth.write_tiny_moe(tmp_path / "b.gguf", seed=3)
    c = synth.write_tiny_moe(tmp_path / "c.gguf", seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_size == c.stat().st_size and a.read_bytes() != c.read_bytes()


def test_tokenizer_metadata(tiny_llama):
    reader = gguf.GGUFReader(tiny_llama)
    field = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(field.parts[i]).decode() for i in field.data]
    assert tokens[:3] == ["<unk>", "<s>", "</s>"]
    assert tokens[3:259] == [f"<0x{b:02X}>" for b in range(256)]
    assert "\u2581hello" in tokens and len(tokens) == len(set(tokens)) == 384
    model = bytes(reader.fields["tokenizer.ggml.model"].parts[-1]).decode()
    assert model == "llama"


def test_tiled_real_shape_loads_and_holds_valid_blocks(cpu_bin, tmp_path):
    # Qwen3-30B-A3B's layer shapes, cut to one layer and 16 experts so it stays small;
    # the 2048x768x16 expert tensors are big enough to be written by tiling the pool.
    shape = replace(synth.SHAPES["qwen3-30b-a3b"], layers=1, experts=16, vocab_size=512)
    path = synth.write_model(tmp_path / "tiled.gguf", shape, data="tiled")[0]
    header = read_header(path)
    experts = next(t for t in header.tensors if t.name == "blk.0.ffn_up_exps.weight")
    assert experts.nbytes > synth._POOL_BYTES
    with path.open("rb") as handle:
        handle.seek(header.data_offset + experts.offset)
        raw = np.frombuffer(handle.read(experts.nbytes), dtype=np.uint8)
    values = gguf.quants.dequantize(raw.reshape(-1, 2048 // 32 * 18),
                                    gguf.GGMLQuantizationType.Q4_0)
    assert np.isfinite(values).all() and values.std() > 0
    records = _bench(cpu_bin, path)
    assert records[0]["model_type"].startswith("qwen3moe") and records[1]["avg_ts"] > 0


def test_sparse_file_takes_no_disk(tmp_path):
    path = synth.write_model(tmp_path / "sparse.gguf", synth.SHAPES["qwen3-8b"],
                             data="sparse")[0]
    size = path.stat().st_size
    assert size == read_header(path).data_offset + synth.planned_size(synth.SHAPES["qwen3-8b"])
    assert path.stat().st_blocks * 512 < 64 << 20


def test_real_shape_sizes():
    # Qwen3-8B in Q8_0 (34 bytes per 32 weights), norms in F32.
    layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 12288
    q8 = (36 * layer + 2 * 151936 * 4096) // 32 * 34
    f32 = (36 * (2 * 4096 + 2 * 128) + 4096) * 4
    assert synth.planned_size(synth.SHAPES["qwen3-8b"]) == q8 + f32
    # Qwen3-30B-A3B in Q4_0 (18 bytes per 32), router and norms in F32.
    attention = 2 * 2048 * 4096 + 2 * 2048 * 512
    experts = 3 * 2048 * 768 * 128
    q4 = (48 * (attention + experts) + 2 * 151936 * 2048) // 32 * 18
    f32 = (48 * (2 * 2048 + 2 * 128 + 2048 * 128) + 2048) * 4
    assert synth.planned_size(synth.SHAPES["qwen3-30b-a3b"]) == q4 + f32
    assert 16e9 < q4 + f32 < 18e9


def test_command_line(tmp_path):
    out = tmp_path / "cli.gguf"
    run = subprocess.run([sys.executable, "-m", "backends.tooling.synth", str(out), "--shape",
                          "tiny-moe", "--type", "Q8_0"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    model = read_model(out)
    assert (model.architecture, model.quant, model.expert_count) == ("qwen3moe", "Q8_0", 8)
    bad = subprocess.run([sys.executable, "-m", "backends.tooling.synth", str(out), "--shape", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
