"""Build discovery and probing against the real llama.cpp builds and real broken ones."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from backends import builds
from backends.builds import (
    BuildInfo,
    Device,
    backend_from_devices,
    discover_builds,
    parse_build_arg,
    parse_devices,
    parse_flags,
    parse_version,
    probe_build,
)
from backends.journal import codec


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    # Probes must not see a visibility choice from the developer's shell, nor share the
    # user's probe cache.
    monkeypatch.delenv("GGML_VK_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(builds.probe, "default_cache_path", lambda: tmp_path / "probes.json")
    builds.clear_memory_cache()
    yield
    builds.clear_memory_cache()


def _executable(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    path.chmod(0o755)
    return path


# --- real builds ---------------------------------------------------------------------------

def test_cpu_build_probe(cpu_bin):
    info = probe_build(cpu_bin, "cpu")
    assert info.problem is None and info.runnable
    assert info.backend == "CPU"
    assert info.devices == ()
    assert info.env == {}
    assert info.bench == cpu_bin / "llama-bench"
    assert info.completion == cpu_bin / "llama-completion"
    assert info.perplexity == cpu_bin / "llama-perplexity"
    assert info.version_text.startswith("version:")
    # This llama.cpp takes -lm/--load-mode instead of -mmp, and knows the flags sweeps need.
    assert info.supports("-lm", "--load-mode") and not info.supports("-mmp")
    assert {"-ncmoe", "--n-cpu-moe", "-d", "--n-depth", "--progress", "-o", "-fa"} <= info.flags


def test_cpu_build_version_matches_its_json_output(cpu_bin, tiny_llama):
    info = probe_build(cpu_bin)
    run = subprocess.run(
        [str(info.bench), "-m", str(tiny_llama), "-p", "8", "-n", "0", "-r", "1", "-o", "jsonl"],
        capture_output=True, text=True, check=True, start_new_session=True,
    )
    record = json.loads(run.stdout.splitlines()[0])
    assert info.build_number == (record["build_number"] or None)
    assert info.commit == (None if record["build_commit"] == "unknown" else record["build_commit"])
    assert record["backends"] == info.backend


def test_vulkan_build_finds_lavapipe_with_env(vulkan_bin):
    info = probe_build(vulkan_bin, "vulkan")
    assert info.problem is None and info.runnable
    assert info.backend == "Vulkan"
    assert info.devices[0].name == "Vulkan0"
    assert any(r in info.devices[0].description.lower() for r in ("llvmpipe", "lavapipe"))
    assert info.devices[0].total_mib > 0
    assert dict(info.env) == {"GGML_VK_VISIBLE_DEVICES": "0"}
    assert info.note and "software renderer" in info.note
    assert info.launch_env()["GGML_VK_VISIBLE_DEVICES"] == "0"


def test_vulkan_build_runs_tiny_models_with_its_env(vulkan_bin, tiny_llama, tiny_moe):
    info = probe_build(vulkan_bin)
    for model in (tiny_llama, tiny_moe):
        run = subprocess.run(
            [str(info.bench), "-m", str(model), "-p", "16", "-n", "4", "-r", "1", "-o", "jsonl"],
            capture_output=True, text=True, env=info.launch_env(), start_new_session=True,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        records = [json.loads(line) for line in run.stdout.splitlines()]
        assert [r["backends"] for r in records] == ["Vulkan", "Vulkan"]
        assert all(r["avg_ts"] > 0 for r in records)


def test_probe_accepts_path_to_llama_bench(cpu_bin):
    info = probe_build(cpu_bin / "llama-bench", "direct")
    assert info.runnable and info.folder == cpu_bin and info.name == "direct"


def test_probe_cache_on_disk_and_invalidated_by_mtime(cpu_bin, tmp_path):
    copy = tmp_path / "build-copy" / "bin"
    shutil.copytree(cpu_bin, copy, symlinks=True)
    cache = tmp_path / "cache" / "probes.json"
    first = probe_build(copy, "copy", cache_path=cache)
    assert first.runnable
    records = json.loads(cache.read_text())
    assert len(records) == 1
    (key, record), = records.items()
    assert str((copy / "llama-bench").resolve()) in key

    # A record changed on disk is what a fresh process (empty memory cache) gets back.
    record["version_text"] = "version: 1234 (cached)"
    cache.write_text(json.dumps({key: record}))
    builds.clear_memory_cache()
    assert probe_build(copy, "copy", cache_path=cache).version_text == "version: 1234 (cached)"

    # Rebuilding (new mtime) makes the cached record stale: the real probe runs again.
    bench = copy / "llama-bench"
    later = bench.stat().st_mtime_ns + 5_000_000_000
    os.utime(bench, ns=(later, later))
    builds.clear_memory_cache()
    again = probe_build(copy, "copy", cache_path=cache)
    assert again.version_text == first.version_text
    assert len(json.loads(cache.read_text())) == 2


def test_discover_named_and_default_locations(cpu_bin, tmp_path, monkeypatch):
    home = tmp_path / "home"
    linked = home / "llama.cpp" / "build-linked" / "bin"
    linked.mkdir(parents=True)
    (linked / "llama-bench").symlink_to(cpu_bin / "llama-bench")
    monkeypatch.setattr(builds.discover.Path, "home", classmethod(lambda cls: home))
    monkeypatch.setenv("PATH", f"{cpu_bin}{os.pathsep}{os.environ['PATH']}")

    found = discover_builds({"mine": cpu_bin, "gone": tmp_path / "nowhere"})
    by_name = {b.name: b for b in found}
    # cpu_bin is named by the user and also on PATH: listed once, under the user's name.
    assert [b.name for b in found if b.bench == cpu_bin / "llama-bench"] == ["mine"]
    assert by_name["gone"].problem.startswith("folder not found")
    # The symlinked build resolves to the same llama-bench, so it is the same build.
    assert "linked" not in by_name

    folders = builds.candidate_folders(home=home, search_path="")
    assert folders == [linked]


# --- real broken builds --------------------------------------------------------------------

def test_missing_folder(tmp_path):
    info = probe_build(tmp_path / "absent", "absent")
    assert not info.runnable
    assert info.problem == f"folder not found: {tmp_path / 'absent'}"


def test_folder_without_llama_bench(tmp_path):
    (tmp_path / "empty").mkdir()
    info = probe_build(tmp_path / "empty")
    assert info.problem == f"no llama-bench in {tmp_path / 'empty'}"
    assert info.name == "empty"


def test_llama_bench_not_executable(cpu_bin, tmp_path):
    folder = tmp_path / "noexec"
    folder.mkdir()
    shutil.copy(cpu_bin / "llama-bench", folder / "llama-bench")
    (folder / "llama-bench").chmod(0o644)
    info = probe_build(folder)
    assert not info.runnable
    assert "not executable" in info.problem and "\n" not in info.problem


def _elf_header(machine: int) -> bytes:
    # A 64-bit little-endian ELF executable header for another processor.
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    return ident + (2).to_bytes(2, "little") + machine.to_bytes(2, "little") + bytes(44)


def test_wrong_architecture(tmp_path):
    other, other_name = (0x3E, "x86_64") if platform.machine() != "x86_64" else (0xB7, "aarch64")
    folder = tmp_path / "arm"
    folder.mkdir()
    _executable(folder / "llama-bench", _elf_header(other) + os.urandom(256))
    info = probe_build(folder)
    assert not info.runnable
    assert info.problem == (f"llama-bench is built for {other_name}, this machine is "
                            f"{platform.machine()} (exec format error)")


def test_random_bytes(tmp_path):
    folder = tmp_path / "garbage"
    folder.mkdir()
    _executable(folder / "llama-bench", b"\x00\x13\x37" + os.urandom(512))
    info = probe_build(folder)
    assert info.problem == "llama-bench is not a program this machine can run (exec format error)"


def test_missing_shared_library(tmp_path):
    folder = tmp_path / "nolib"
    folder.mkdir()
    (folder / "helper.c").write_text("int helper_value(void) { return 7; }\n")
    (folder / "main.c").write_text(
        "int helper_value(void);\nint main(void) { return helper_value() == 7 ? 0 : 1; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(folder / "libduelhelper.so"),
                    str(folder / "helper.c")], check=True)
    subprocess.run(["gcc", "-o", str(folder / "llama-bench"), str(folder / "main.c"),
                    f"-L{folder}", "-lduelhelper", f"-Wl,-rpath,{folder}"], check=True)
    # It runs while the library is there...
    assert subprocess.run([str(folder / "llama-bench")]).returncode == 0
    (folder / "libduelhelper.so").unlink()
    info = probe_build(folder)
    assert not info.runnable
    assert info.problem == ("missing shared library libduelhelper.so "
                            "(error while loading shared libraries)")


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] not in ("Z", "X")


def test_probe_timeout_kills_the_process_group(tmp_path):
    folder = tmp_path / "hangs"
    folder.mkdir()
    pids = folder / "pids"
    _executable(folder / "llama-bench",
                f"#!/bin/sh\nsleep 1000 &\necho $$ $! > {pids}\nwait\n")
    info = probe_build(folder, timeout=1.0)
    assert not info.runnable
    assert info.problem == "llama-bench --version did not answer within 1 s (killed)"
    shell, child = (int(p) for p in pids.read_text().split())
    deadline = time.monotonic() + 10
    while (_alive(shell) or _alive(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(shell) and not _alive(child)


def test_crash_reports_signal(tmp_path):
    folder = tmp_path / "crashes"
    folder.mkdir()
    _executable(folder / "llama-bench", "#!/bin/sh\nkill -SEGV $$\n")
    info = probe_build(folder)
    assert info.problem == "llama-bench --version crashed (SIGSEGV)"


def test_crash_in_list_devices_after_good_version(tmp_path, cpu_bin):
    # A build whose device probe crashes (as a broken GPU runtime does).
    folder = tmp_path / "gpu-crash"
    folder.mkdir()
    real = cpu_bin / "llama-bench"
    _executable(folder / "llama-bench",
                f'#!/bin/sh\nif [ "$1" = --list-devices ]; then kill -ABRT $$; fi\n'
                f'exec {real} "$@"\n')
    info = probe_build(folder, "gpu-crash")
    assert info.problem == "llama-bench --list-devices crashed (SIGABRT)"
    assert info.flags == frozenset()  # a failed probe claims nothing about the build


def test_broken_builds_are_not_cached(tmp_path):
    (tmp_path / "empty").mkdir()
    cache = tmp_path / "c" / "probes.json"
    probe_build(tmp_path / "empty", cache_path=cache)
    assert not cache.exists()


# --- parsing real output shapes ------------------------------------------------------------

def test_parse_devices_several_backends():
    text = (
        "ggml_vulkan: Found 1 Vulkan devices:\n"
        "Available devices:\n"
        "  ROCm0: AMD Instinct MI50/MI60 (32752 MiB, 32484 MiB free)\n"
        "  Vulkan0: AMD Instinct MI50/MI60 (RADV VEGA20) (32768 MiB, 32000 MiB free)\n"
    )
    devices = parse_devices(text)
    assert devices == (
        Device("ROCm0", "AMD Instinct MI50/MI60", 32752, 32484),
        Device("Vulkan0", "AMD Instinct MI50/MI60 (RADV VEGA20)", 32768, 32000),
    )
    assert backend_from_devices(devices) == "ROCm,Vulkan"
    assert parse_devices("Available devices:\n  (none)\n") == ()
    assert parse_devices("error: invalid parameter for argument: --list-devices") is None
    assert backend_from_devices(()) == "CPU"
    assert backend_from_devices([Device("CUDA0", "H100", 81000, 80000),
                                 Device("CUDA1", "H100", 81000, 80000)]) == "CUDA"


def test_parse_version_styles():
    assert parse_version("version: 8467 (6c7e9a54)\nbuilt with cc for x86_64") == \
        (8467, "6c7e9a54", "version: 8467 (6c7e9a54)")
    assert parse_version("version: 0.6.0-dev (build 0, commit unknown)\n")[:2] == (None, None)
    assert parse_version("version: 0.9.1 (build 9012, commit abc1234)")[:2] == (9012, "abc1234")
    assert parse_version("version: 0 (unknown)")[:2] == (None, None)
    assert parse_version("nothing here") == (None, None, "")


def test_parse_flags_of_an_older_help():
    help_text = (
        "  -mmp, --mmap <0|1>                  (default: 1)\n"
        "  -p, --n-prompt <n>                  (default: 512)\n"
        "  -ot --override-tensor <tensor name pattern>=<buffer type>;...\n"
        "  --progress                          print test progress indicators\n"
        "Multiple values can be given for each parameter by separating them with ','\n"
    )
    assert parse_flags(help_text) == {"-mmp", "--mmap", "-p", "--n-prompt", "-ot",
                                      "--override-tensor", "--progress"}


def test_parse_build_arg():
    assert parse_build_arg("rocm=~/llama.cpp/build-rocm") == \
        ("rocm", Path.home() / "llama.cpp" / "build-rocm")
    assert parse_build_arg("/opt/x/build-vulkan/bin/llama-bench") == \
        ("vulkan", Path("/opt/x/build-vulkan/bin/llama-bench"))
    for bad in ("=x", "rocm=", ""):
        with pytest.raises(ValueError):
            parse_build_arg(bad)


def test_build_info_json_round_trip(cpu_bin):
    info = probe_build(cpu_bin, "cpu")
    assert codec.from_builtins(json.loads(json.dumps(codec.to_builtins(info))), BuildInfo) == info


# --- the command ---------------------------------------------------------------------------

def test_builds_command_table(cpu_bin, vulkan_bin, tmp_path, capsys):
    from tui.cli import main

    code = main(["builds", "--no-search", "--build", f"cpu={cpu_bin}",
                 "--build", f"vk={vulkan_bin}", "--build", f"gone={tmp_path / 'x'}"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "BACKEND", "DEVICES", "VERSION", "STATUS"]
    text = "\n".join(lines)
    cpu_row = next(line for line in lines if line.startswith("cpu "))
    assert cpu_row.split()[:3] == ["cpu", "CPU", "(CPU"]
    vk_row = next(line for line in lines if line.startswith("vk "))
    assert "Vulkan0 llvmpipe" in vk_row and vk_row.rstrip().endswith("ok")
    assert "needs GGML_VK_VISIBLE_DEVICES=0" in text
    assert f"problem: folder not found: {tmp_path / 'x'}" in text

    assert main(["builds", "--no-search", "--json", "--build", f"vk={vulkan_bin}"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["backend"] == "Vulkan" and record["env"] == {"GGML_VK_VISIBLE_DEVICES": "0"}
    assert record["devices"][0]["name"] == "Vulkan0"


def test_builds_command_without_a_runnable_build(tmp_path, capsys):
    from tui.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["builds", "--no-search", "--build", f"e={tmp_path / 'empty'}"]) == 2
    captured = capsys.readouterr()
    assert f"problem: no llama-bench in {tmp_path / 'empty'}" in captured.out
    assert captured.err == ("llamaduel: no runnable llama.cpp build found; "
                            "name one with --build NAME=PATH\n")
    assert main(["builds", "--build", "=nowhere"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_probe_accepts_another_tool_of_the_build(cpu_bin):
    info = probe_build(cpu_bin / "llama-completion", "by-completion")
    assert info.runnable and info.bench == cpu_bin / "llama-bench"
