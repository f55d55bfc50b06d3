"""Profiles: TOML round trips, atomic saves under SIGKILL, hostile files, the CLI."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.journal.journal import event_to_json
from backends.journal.sweep import BenchResult, PointFailed, ResultReceived, SweepStarted, TestPoint
from profiles.exporters import launch_command, llama_swap_config, to_csv, to_json, to_markdown
from profiles.model import (
    BuildRecord,
    HostFingerprint,
    ModelFacts,
    Profile,
    ProfileResult,
    host_fingerprint,
    model_identity,
    profile_from_journal,
)
from profiles.store import MAX_PROFILE_BYTES, ProfileError, ProfileStore, encode, profile_from_toml, profile_to_toml
from profiles.verdict import recommend_run
from tui.cli import main

REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------
# Strategies

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
json_leaf = st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | finite | text
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(text, inner, max_size=3), max_leaves=8)
points = st.builds(TestPoint, st.integers(0, 65536), st.integers(0, 4096), st.integers(0, 131072))


@st.composite
def bench_results(draw):
    samples = tuple(draw(st.lists(st.floats(0.1, 1e6), min_size=0, max_size=5)))
    raw = draw(st.dictionaries(text, json_value, max_size=4))
    return BenchResult(point=draw(points), avg_ts=draw(st.floats(0.0, 1e6) | st.just(math.nan)),
                       stddev_ts=draw(st.floats(0.0, 1e4)), samples_ts=samples, raw=raw)


names = st.sampled_from(["ROCm", "Vulkan", "CUDA", "cpu b11434"])


@st.composite
def profiles(draw):
    builds = tuple(BuildRecord(name=n, backend=draw(text), build_number=draw(st.none() | st.integers(0, 99999)),
                               commit=draw(st.none() | text), path=draw(st.none() | text))
                   for n in draw(st.lists(names, min_size=1, max_size=3, unique=True)))
    results = tuple(ProfileResult(build=draw(st.sampled_from([b.name for b in builds])), result=draw(bench_results()),
                                  telemetry=draw(st.none() | st.dictionaries(text, json_value, max_size=3)))
                    for _ in range(draw(st.integers(0, 4))))
    failures = tuple(PointFailed(build=draw(names), point=draw(points), reason=draw(text),
                                 exit_code=draw(st.none() | st.integers(-255, 255)),
                                 signal=draw(st.none() | st.sampled_from(["SIGSEGV", "SIGKILL"])),
                                 timed_out=draw(st.booleans()), stderr_tail=draw(text))
                     for _ in range(draw(st.integers(0, 2))))
    correctness = draw(st.none() | st.dictionaries(names, st.fixed_dictionaries(
        {"status": st.sampled_from(["reference", "pass", "suspect", "failed"]),
         "mean_kld": finite, "top1_agreement": finite, "reason": st.none() | text}), max_size=2))
    return Profile(
        name=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)),
        created=draw(text),
        host=HostFingerprint(hostname=draw(text), cpu=draw(text), cpu_count=draw(st.none() | st.integers(1, 512)),
                             gpu_name=draw(st.none() | text), rocm_version=draw(st.none() | text)),
        model=ModelFacts(file_name=draw(text), parameters=draw(st.none() | st.integers(0, 2**50)),
                         is_moe=draw(st.none() | st.booleans()), identity=draw(st.none() | text)),
        builds=builds, sweep_spec=draw(st.dictionaries(text, json_value, max_size=4)),
        results=results, failures=failures, correctness=correctness,
        races=tuple(draw(st.lists(st.dictionaries(text, json_value, max_size=3), max_size=2))))


def _same(a, b) -> bool:
    """Deep equality that treats NaN as equal to NaN (encode() keeps every field, raw included)."""
    return json.dumps(encode(a), sort_keys=True, default=str) == json.dumps(encode(b), sort_keys=True, default=str)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles())
def test_profile_round_trips_through_toml(profile):
    back = profile_from_toml(profile_to_toml(profile))
    assert _same(back, profile)
    assert [r.result.raw for r in back.results] == [r.result.raw for r in profile.results] or any(
        isinstance(v, float) and math.isnan(v) for r in profile.results for v in r.result.raw.values())


def _sample_profile(name: str = "mi50", *, nightly_crashes: bool = False) -> Profile:
    results = []
    for build, pp, tg in (("ROCm", 1300.0, 40.0), ("Vulkan", 1000.0, 50.0)):
        for depth in (0, 4096, 32768):
            for n_prompt, n_gen, speed in ((512, 0, pp - depth / 64), (0, 128, tg - depth / 4096)):
                samples = [speed * 0.99, speed, speed * 1.01]
                raw = {"model_filename": "/m/qwen-9b-Q8_0.gguf", "model_type": "qwen35 9B Q8_0",
                       "n_prompt": n_prompt, "n_gen": n_gen, "n_depth": depth, "avg_ts": speed,
                       "stddev_ts": speed * 0.01, "samples_ts": samples, "flash_attn": 1,
                       "type_k": "f16", "type_v": "f16", "n_gpu_layers": 99, "n_ubatch": 512}
                results.append(ResultReceived(build=build, result=BenchResult.from_llama_bench(raw),
                                              telemetry={"peak_vram_bytes": 123, "max_edge_c": None}))
    events = [SweepStarted(run_id="r1", run_dir="/tmp/r1", model="/m/qwen-9b-Q8_0.gguf", builds=("ROCm", "Vulkan"),
                           points=(), spec={"flash_attn": 1, "depths": [0, 4096, 32768]},
                           build_paths={"ROCm": "/opt/llama-rocm/bin", "Vulkan": "/opt/llama-vulkan/bin"}),
              *results]
    if nightly_crashes:
        events.append(PointFailed(build="ROCm", point=TestPoint(512, 0, 65536), reason="crash",
                                  exit_code=-11, signal="SIGSEGV"))
    return profile_from_journal(events, name=name, host=HostFingerprint(hostname="gpu-box", gpu_name="MI50"))


def test_profile_from_journal_carries_everything():
    profile = _sample_profile()
    assert [b.name for b in profile.builds] == ["ROCm", "Vulkan"]
    assert profile.build("ROCm").path == "/opt/llama-rocm/bin"
    assert profile.sweep_spec["depths"] == [0, 4096, 32768]
    assert len(profile.results) == 12 and profile.results[0].telemetry["peak_vram_bytes"] == 123
    rec = profile.recommendation
    assert rec.verdict("short_dense", "pp").winner == "ROCm"
    assert rec.verdict("short_dense", "tg").winner == "Vulkan"
    back = profile_from_toml(profile_to_toml(profile))
    assert _same(back, profile)
    assert back.results[0].telemetry["max_edge_c"] is None  # None survives TOML


def test_store_save_list_load_rename_delete(tmp_path):
    store = ProfileStore(tmp_path)
    store.save(_sample_profile("first"))
    store.save(_sample_profile("second"))
    assert [e.name for e in store.list()] == ["first", "second"]
    assert store.load("first").recommendation.verdict("short_dense", "pp").winner == "ROCm"
    store.rename("first", "renamed")
    assert not (tmp_path / "first.toml").exists()
    assert store.load("renamed").name == "renamed"
    with pytest.raises(ProfileError, match="already exists"):
        store.rename("renamed", "second")
    store.delete("second")
    assert [e.name for e in store.list()] == ["renamed"]
    with pytest.raises(ProfileError, match="no profile named"):
        store.load("second")
    with pytest.raises(ProfileError, match="not a usable profile name"):
        store.save(_sample_profile("../escape"))


def test_data_dir_env_moves_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMADUEL_DATA_DIR", str(tmp_path / "data"))
    store = ProfileStore()
    assert store.root == tmp_path / "data" / "profiles"
    store.save(_sample_profile())
    assert (tmp_path / "data" / "profiles" / "mi50.toml").is_file()


HOSTILE = {
    "garbage": b"\x89PNG\r\n\x1a\n\x00\x00binary",
    "truncated": None,  # filled from a real profile below
    "nested": b"schema = 1\nname = 'x'\nvalue = " + b"[" * 5000 + b"]" * 5000 + b"\n# end of llamaduel profile\n",
    "nested_tables": b"schema = 1\na = " + b"{ b = " * 3000 + b"1" + b" }" * 3000 + b"\n# end of llamaduel profile\n",
    "wrong_types": b"schema = 1\nname = 42\ncreated = 'x'\n[host]\n[model]\n# end of llamaduel profile\n",
    "newer": b"schema = 99\nname = 'x'\n# end of llamaduel profile\n",
    "no_schema": b"name = 'x'\n",
    "not_toml": b"this is = = not toml [",
    "latin1": "name = 'caf\xe9'".encode("latin-1"),
}


def test_hostile_profiles_are_reported_in_one_line(tmp_path):
    store = ProfileStore(tmp_path)
    good = store.save(_sample_profile("good"))
    HOSTILE["truncated"] = good.read_bytes()[: good.stat().st_size // 2]
    for name, payload in HOSTILE.items():
        (tmp_path / f"{name}.toml").write_bytes(payload)
    with open(tmp_path / "huge.toml", "wb") as handle:  # sparse: size refused before reading
        handle.truncate(MAX_PROFILE_BYTES + 1)
    entries = {e.name: e for e in store.list()}
    assert entries["good"].problem is None
    for name in [*HOSTILE, "huge"]:
        problem = entries[name].problem
        assert problem and "\n" not in problem, name
        with pytest.raises(ProfileError) as raised:
            store.load(name)
        assert "\n" not in str(raised.value)
    assert "newer" in entries["newer"].problem and "upgrade" in entries["newer"].problem
    assert "16 MiB" in entries["huge"].problem
    assert "truncated" in entries["truncated"].problem
    assert "nested" in entries["nested"].problem and "nested" in entries["nested_tables"].problem
    assert "name" in entries["wrong_types"].problem


_WRITER = """
import dataclasses, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.test_profile_store import _sample_profile
from profiles.store import ProfileStore
# A few MiB: writing and fsyncing it takes long enough to be killed part-way.
profile = dataclasses.replace(_sample_profile("mi50", nightly_crashes=True),
                              races=({{"text": "x" * 6_000_000}},))
ProfileStore(sys.argv[1]).save(profile)
"""


def test_sigkill_during_a_save_leaves_the_old_profile_or_the_new_one_never_a_mix(tmp_path):
    store = ProfileStore(tmp_path)
    store.save(_sample_profile("mi50"))
    before = (tmp_path / "mi50.toml").read_bytes()
    caught_mid_write = False
    for _attempt in range(20):
        child = subprocess.Popen([sys.executable, "-c", _WRITER.format(repo=str(REPO)), str(tmp_path)],
                                 start_new_session=True)
        try:
            # Kill the writer the moment its temporary file shows up: the crash lands
            # somewhere in the write, the fsync or the rename, wherever it happens to be.
            while child.poll() is None and not list(tmp_path.glob(".mi50.toml.*.tmp")):
                time.sleep(0.001)
            os.killpg(child.pid, signal.SIGKILL)
        finally:
            child.wait()
        now = (tmp_path / "mi50.toml").read_bytes()
        leftovers = list(tmp_path.glob(".mi50.toml.*.tmp"))
        assert [(e.name, e.problem) for e in store.list()] == [("mi50", None)]  # a temp is no profile
        if now == before:
            caught_mid_write = True
            assert leftovers, "the old profile stands only while the new one was unfinished"
            assert not store.load("mi50").failures
            for leftover in leftovers:
                leftover.unlink()
            break
        assert len(store.load("mi50").failures) == 1  # the new one, complete
        store.save(_sample_profile("mi50"))
        before = (tmp_path / "mi50.toml").read_bytes()
    assert caught_mid_write
    # And without the kill the same writer replaces it completely.
    subprocess.run([sys.executable, "-c", _WRITER.format(repo=str(REPO)), str(tmp_path)], check=True)
    assert len(store.load("mi50").failures) == 1


def test_model_identity_and_host_fingerprint(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\x01" * (2 * 1024 * 1024))
    first = model_identity(model)
    with open(model, "r+b") as handle:
        handle.seek(3 * 1024 * 1024 // 2)
        handle.write(b"\x02")  # past the first MiB, same size: same identity
    assert model_identity(model) == first
    with open(model, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x02")
    assert model_identity(model) != first
    host = host_fingerprint(gpu_name="AMD Instinct MI50", vbios="113-D1631700-111", vulkan_version="1.4.341")
    assert host.hostname and host.kernel and host.gpu_name == "AMD Instinct MI50" and host.vbios
    assert host.cpu_count and host.cpu_count >= 1


def test_exports():
    profile = _sample_profile()
    md = to_markdown(profile.recommendation)
    assert [c.strip() for c in md.splitlines()[0].strip("|").split("|")] == ["workload", "ROCm", "Vulkan", "winner"]
    assert any(line.startswith("| dense, short context — prompt processing |") and "ROCm (+" in line
               for line in md.splitlines())
    rows = to_csv(profile.recommendation).splitlines()
    assert rows[0].startswith("workload,phase,build,typical_ts")
    assert len(rows) == 1 + 4 * 2
    data = json.loads(to_json(profile))
    assert data["name"] == "mi50" and data["results"][0]["telemetry"]["max_edge_c"] is None
    command = launch_command(profile, "short_dense", model_path="/models/qwen 9b.gguf")
    assert command.argv[0] == "/opt/llama-vulkan/bin/llama-server"  # tg winner for chat-like use
    assert command.argv[command.argv.index("-fa") + 1] == "on"
    assert command.argv[command.argv.index("-ctk") + 1] == "f16"
    assert command.argv[command.argv.index("-c") + 1] == "8192"
    assert "'/models/qwen 9b.gguf'" in command.display
    long = launch_command(profile, "long_dense")
    assert long.argv[long.argv.index("-c") + 1] == "65536"
    with pytest.raises(ValueError, match="no results for the MoE"):
        launch_command(profile, "moe")
    swap = llama_swap_config(profile)
    assert swap.startswith("models:\n") and '"qwen-9b-Q8_0-short-dense":' in swap and "${PORT}" in swap


def test_cli_profiles_round_trip(tmp_path, capsys):
    store = tmp_path / "store"
    journal = tmp_path / "journal.jsonl"
    events = [SweepStarted(run_id="r", run_dir=str(tmp_path), model="/m/x.gguf", builds=("ROCm", "Vulkan"),
                           points=(), build_paths={"ROCm": "/opt/r/bin", "Vulkan": "/opt/v/bin"})]
    events += [e for e in _events_of(_sample_profile())]
    journal.write_text("".join(json.dumps(event_to_json(e)) + "\n" for e in events))
    assert main(["profiles", "--store", str(store), "import", str(journal), "--name", "box"]) == 0
    assert main(["profiles", "--store", str(store), "list"]) == 0
    assert "box" in capsys.readouterr().out
    assert main(["profiles", "--store", str(store), "show", "box"]) == 0
    out = capsys.readouterr().out
    assert "ROCm is" in out and "Vulkan is" in out
    assert main(["profiles", "--store", str(store), "export", "box", "--format", "launch",
                 "--workload", "long_dense"]) == 0
    assert capsys.readouterr().out.startswith("/opt/v/bin/llama-server -m /m/x.gguf --host 127.0.0.1")
    assert main(["profiles", "--store", str(store), "export", "box", "--format", "md"]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| workload"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["workload", "ROCm", "Vulkan", "winner"]
    assert main(["profiles", "--store", str(store), "rename", "box", "box2"]) == 0
    assert main(["profiles", "--store", str(store), "compare", "box2", "box2"]) == 0
    capsys.readouterr()
    assert main(["profiles", "--store", str(store), "show", "missing"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no profile named 'missing'" in err
    assert main(["profiles", "--store", str(store), "delete", "box2", "--yes"]) == 0
    assert main(["profiles", "--store", str(store), "import", str(tmp_path / "nope.jsonl"), "--name", "n"]) == 2
    (store / "bad.toml").write_bytes(b"\x00\x01")
    assert main(["profiles", "--store", str(store), "list"]) == 0
    assert "bad: unreadable: binary data" in capsys.readouterr().out


def _events_of(profile: Profile):
    for entry in profile.results:
        yield ResultReceived(build=entry.build, result=entry.result, telemetry=entry.telemetry)


def test_recommend_command_on_a_journal_and_garbage(tmp_path, capsys):
    journal = tmp_path / "journal.jsonl"
    journal.write_text("".join(json.dumps(event_to_json(e)) + "\n" for e in _events_of(_sample_profile())))
    assert main(["recommend", str(journal)]) == 0
    out = capsys.readouterr().out
    assert "Choose ROCm if you run" in out and "workload" in out
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(os.urandom(4096).replace(b"\x00", b"\x01") + b"\x00")
    assert main(["recommend", str(garbage)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") <= 2 and "no llama-bench results" in err


def test_recommend_directly_matches_profile():
    # One verdict path: the profile's records judged again give the profile's verdict.
    profile = _sample_profile()
    direct = recommend_run(profile.records())
    assert _same(direct, profile.recommendation)
