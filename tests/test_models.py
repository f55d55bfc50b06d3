"""GGUF discovery, header-only metadata and the fit estimate, on generated real files."""

from __future__ import annotations

import json
import shutil
import subprocess

import gguf
import numpy as np
import pytest

from backends.models import (
    ModelSearchError,
    estimate_fit,
    find_models,
    kv_cache_bytes,
    read_header,
    read_model,
)
from backends.tooling import synth
from tui.cli import main

MIB = 1 << 20
# tiny llama (2 layers, embd 64, 4 heads of 16, 2 KV heads, ff 128, vocab 384), in elements:
#   token_embd 384*64 + output 384*64 + output_norm 64
#   per layer: 2 norms 2*64, q 64*64, k 64*32, v 64*32, o 64*64, gate/up/down 3*64*128
TINY_LLAMA_PARAMS = 2 * 384 * 64 + 64 + 2 * (2 * 64 + 2 * 4096 + 2 * 2048 + 3 * 8192)
# tiny qwen3moe (8 experts of ff 32, router F32, q/k norms of 16) per layer:
#   2 norms, q, k, v, o, q_norm 16, k_norm 16, router 64*8, experts 3*64*32*8
TINY_MOE_LAYER = 2 * 64 + 2 * 4096 + 2 * 2048 + 2 * 16 + 64 * 8 + 3 * 64 * 32 * 8
TINY_MOE_PARAMS = 2 * 384 * 64 + 64 + 2 * TINY_MOE_LAYER
TINY_MOE_EXPERT_BYTES = 3 * 64 * 32 * 8 * 4  # F32 experts per layer
# compute margin: 256 MiB + one 512-token batch of F32 logits over the 384-token vocab
TINY_COMPUTE = 256 * MIB + 512 * 384 * 4


def test_tiny_llama_metadata(tiny_llama):
    model = read_model(tiny_llama)
    assert model.problem is None and model.runnable
    assert model.architecture == "llama"
    assert model.name == "tiny llama"
    assert model.parameters == TINY_LLAMA_PARAMS == 123_200
    assert model.tensor_bytes == TINY_LLAMA_PARAMS * 4
    assert model.size_bytes == tiny_llama.stat().st_size
    assert model.quant == "F32"
    assert (model.layers, model.context_length, model.embedding_length) == (2, 2048, 64)
    assert (model.head_count, model.head_count_kv, model.key_length) == (4, 2, 16)
    assert model.vocab_size == 384
    assert not model.is_moe and model.kind == "dense" and model.expert_bytes_by_layer == ()


def test_tiny_moe_metadata(tiny_moe):
    model = read_model(tiny_moe)
    assert model.runnable and model.architecture == "qwen3moe"
    assert model.parameters == TINY_MOE_PARAMS == 173_440
    assert (model.expert_count, model.experts_used) == (8, 2)
    assert model.is_moe and model.kind == "MoE 8x2"
    assert model.expert_bytes_by_layer == (TINY_MOE_EXPERT_BYTES, TINY_MOE_EXPERT_BYTES)


def test_metadata_agrees_with_gguf_reader_and_llama_bench(cpu_bin, tiny_moe, tmp_path):
    q8 = synth.write_tiny_llama(tmp_path / "q8.gguf", weight_type="Q8_0")
    for path in (tiny_moe, q8):
        model = read_model(path)
        reader = gguf.GGUFReader(path)
        assert model.parameters == sum(int(t.n_elements) for t in reader.tensors)
        assert model.tensor_bytes == sum(int(t.n_bytes) for t in reader.tensors)
        header = read_header(path)
        assert header.data_offset == reader.data_offset
        assert [t.name for t in header.tensors] == [t.name for t in reader.tensors]
        run = subprocess.run(
            [str(cpu_bin / "llama-bench"), "-m", str(path), "-p", "8", "-n", "0", "-r", "1",
             "-o", "jsonl"], capture_output=True, text=True, check=True, start_new_session=True)
        record = json.loads(run.stdout.splitlines()[0])
        assert record["model_n_params"] == model.parameters
        assert record["model_size"] == model.tensor_bytes
    assert read_model(q8).quant == "Q8_0"


def test_real_shaped_moe_metadata(tmp_path):
    # Qwen3-30B-A3B's shapes in Q4_0: 17 GB on paper, a sparse file here.
    path = synth.write_model(tmp_path / "a3b.gguf", synth.SHAPES["qwen3-30b-a3b"],
                             data="sparse")[0]
    model = read_model(path)
    assert model.runnable
    assert (model.layers, model.expert_count, model.experts_used) == (48, 128, 8)
    assert model.vocab_size == 151936 and model.context_length == 40960
    assert model.quant == "Q4_0"
    # experts per layer: gate, up and down, each 2048 x 768 x 128, Q4_0 (18 bytes per 32)
    per_layer = 3 * 2048 * 768 * 128 // 32 * 18
    assert per_layer == 339_738_624
    assert model.expert_bytes_by_layer == (per_layer,) * 48
    assert model.parameters == sum(t.elements for t in synth.tensor_plan(synth.SHAPES["qwen3-30b-a3b"]))
    assert model.size_bytes == path.stat().st_size > 16 * (1 << 30)


def test_fit_exact_numbers_dense(tiny_llama):
    model = read_model(tiny_llama)
    kv = 2 * 2048 * (2 * 16) * 2 * 2  # layers x ctx x kv width x (K and V) x f16
    assert kv_cache_bytes(model, 2048) == kv == 524_288
    # q8_0: 34 bytes per 32 values
    assert kv_cache_bytes(model, 2048, "q8_0", "q8_0") == 2 * (2 * 2048 * 32) * 34 // 32
    needed = TINY_LLAMA_PARAMS * 4 + kv + TINY_COMPUTE
    fit = estimate_fit(model, needed, 2048)
    assert (fit.fits, fit.needed_bytes, fit.suggested_ncmoe) == (True, needed, None)
    assert (fit.weights_bytes, fit.kv_bytes, fit.compute_bytes) == (492_800, kv, TINY_COMPUTE)
    short = estimate_fit(model, needed - 1, 2048)
    assert not short.fits and short.suggested_ncmoe is None
    assert "-ngl" in short.reason


def test_fit_suggests_smallest_ncmoe(tiny_moe):
    model = read_model(tiny_moe)
    needed = TINY_MOE_PARAMS * 4 + 524_288 + TINY_COMPUTE
    assert estimate_fit(model, needed, 2048).fits
    one = estimate_fit(model, needed - TINY_MOE_EXPERT_BYTES, 2048)
    assert (one.fits, one.suggested_ncmoe) == (False, 1)
    assert one.needed_with_ncmoe_bytes == needed - TINY_MOE_EXPERT_BYTES
    assert "-ncmoe 1" in one.reason
    two = estimate_fit(model, needed - TINY_MOE_EXPERT_BYTES - 1, 2048)
    assert two.suggested_ncmoe == 2
    never = estimate_fit(model, needed - 2 * TINY_MOE_EXPERT_BYTES - 1, 2048)
    assert never.suggested_ncmoe is None and not never.fits


def test_fit_real_shaped_moe_on_a_16gib_card(tmp_path):
    path = synth.write_model(tmp_path / "a3b.gguf", synth.SHAPES["qwen3-30b-a3b"],
                             data="sparse")[0]
    model = read_model(path)
    fit = estimate_fit(model, 16 * (1 << 30), 32768)
    kv = 48 * 32768 * (4 * 128) * 2 * 2
    compute = 256 * MIB + 512 * 151936 * 4
    assert fit.needed_bytes == model.tensor_bytes + kv + compute
    per_layer = 339_738_624
    expected = next(n for n in range(1, 49)
                    if fit.needed_bytes - n * per_layer <= 16 * (1 << 30))
    assert fit.suggested_ncmoe == expected == 12


def test_split_model_is_one_model(cpu_bin, tmp_path):
    files = synth.write_model(tmp_path / "split" / "tiny.gguf", synth.SHAPES["tiny-llama"],
                              split_max_tensors=8)
    assert [f.name for f in files] == [f"tiny-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    models = find_models([tmp_path / "split"])
    assert len(models) == 1
    model = models[0]
    assert model.runnable and model.files == tuple(files) and model.path == files[0]
    assert model.size_bytes == sum(f.stat().st_size for f in files)
    assert model.parameters == TINY_LLAMA_PARAMS
    # Naming any part reads the whole model.
    assert read_model(files[2]).parameters == TINY_LLAMA_PARAMS
    # llama.cpp loads it from the first part.
    subprocess.run([str(cpu_bin / "llama-bench"), "-m", str(model.path), "-p", "8", "-n", "0",
                    "-r", "1", "-o", "jsonl"], capture_output=True, check=True,
                   start_new_session=True)
    files[1].unlink()
    broken = find_models([tmp_path / "split"])
    assert len(broken) == 1
    assert broken[0].problem == "split model is missing part 2 of 3"
    assert not broken[0].runnable
    assert broken[0].size_bytes == files[0].stat().st_size + files[2].stat().st_size


def test_bad_files_are_listed_with_one_line_problems(tiny_llama, tmp_path):
    folder = tmp_path / "models"
    (folder / "deep" / "er").mkdir(parents=True)
    shutil.copy(tiny_llama, folder / "deep" / "er" / "good.gguf")
    (folder / "notes.gguf").write_text("these are not weights\n")
    (folder / "empty.gguf").write_bytes(b"")
    data = tiny_llama.read_bytes()
    (folder / "half.gguf").write_bytes(data[: len(data) // 2])
    (folder / "header-cut.gguf").write_bytes(data[:100])
    (folder / "dangling.gguf").symlink_to(folder / "gone.gguf")
    (folder / "readme.txt").write_text("not a model")

    writer = gguf.GGUFWriter(folder / "alien.gguf", "notanarch")
    writer.add_block_count(1)
    writer.add_tensor("w", np.ones((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    models = {m.path.name: m for m in find_models([folder])}
    assert set(models) == {"good.gguf", "notes.gguf", "empty.gguf", "half.gguf",
                           "header-cut.gguf", "dangling.gguf", "alien.gguf"}
    assert models["good.gguf"].runnable
    problems = {name: m.problem for name, m in models.items() if name != "good.gguf"}
    assert problems["notes.gguf"] == "not a GGUF file (bad magic)"
    assert problems["empty.gguf"] == "not a GGUF file (empty)"
    assert problems["header-cut.gguf"] == "truncated: the header ends early at byte 100"
    assert problems["half.gguf"] == (f"truncated: tensor data needs {len(data)} bytes, "
                                     f"the file has {len(data) // 2}")
    assert problems["dangling.gguf"] == "cannot read the file (No such file or directory)"
    assert problems["alien.gguf"] == "unknown architecture 'notanarch'"
    assert models["alien.gguf"].parameters == 16  # still described
    for name, problem in problems.items():
        assert "\n" not in problem and not models[name].runnable
        assert not estimate_fit(models[name], 1 << 40, 4096).fits


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ModelSearchError, match="no such folder"):
        find_models([tmp_path / "absent"])


def test_models_command_table_and_json(tiny_llama, tiny_moe, capsys):
    folder = tiny_llama.parent
    assert main(["models", str(folder), str(tiny_moe.parent), "--vram", "1",
                 "--context", "2048"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["FILE", "ARCH", "PARAMS", "QUANT", "SIZE", "LAYERS", "CTX",
                                "KIND", "FIT", "STATUS"]
    rows = {line.split()[0]: line for line in table[1:]}
    assert rows["tiny-llama.gguf"].split()[1:4] == ["llama", "123.2K", "F32"]
    assert "MoE 8x2" in rows["tiny-moe.gguf"] and rows["tiny-moe.gguf"].split()[-2:] == ["fits", "ok"]

    assert main(["models", str(tiny_moe), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records[0]["expert_count"] == 8 and records[0]["parameters"] == TINY_MOE_PARAMS


def test_models_command_missing_folder(tmp_path, capsys):
    assert main(["models", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err == f"llamaduel: no such folder: {tmp_path / 'absent'}\n"
