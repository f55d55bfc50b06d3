"""The amdgpu sysfs source against trees shaped like an MI50's (tests/sysfs_fixtures.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sysfs_fixtures import (
    MI50_GTT_USED,
    MI50_KFD_GPU_ID,
    MI50_PCI,
    MI50_VRAM_TOTAL,
    MI50_VRAM_USED,
    add_fdinfo_process,
    add_kfd,
    build_mi50_tree,
)

from backends.telemetry.amd_cards import amdgpu_ids_name, discover_cards
from backends.telemetry.sysfs import AmdSysfsSource
from backends.telemetry.sysfs_read import normalize_pci

FAKE_PID = 4242  # exists only in the fixture trees


@pytest.fixture
def mi50(tmp_path: Path):
    return build_mi50_tree(tmp_path / "root")


@pytest.fixture
def empty_proc(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    return proc


def only(samples):
    assert len(samples) == 1
    return samples[0]


def test_discovery_keeps_the_amd_card_only(mi50):
    cards = discover_cards(str(mi50.root))
    assert [(c.card, c.pci_address, c.name) for c in cards] == [
        ("card1", MI50_PCI, "AMD Instinct MI60 / MI50")]


def test_name_falls_back_to_pci_ids_without_amdgpu_ids(mi50):
    (mi50.root / "usr/share/libdrm/amdgpu.ids").unlink()
    assert discover_cards(str(mi50.root))[0].name == "AMD GPU [1002:66a1]"


def test_amdgpu_ids_lookup_by_device_and_revision(tmp_path):
    ids = tmp_path / "amdgpu.ids"
    ids.write_text("# c\n1.0.0\n66A1,\t02,\tAMD Instinct MI60 / MI50\n66A1,\t06,\tAMD Radeon Pro VII\n")
    assert amdgpu_ids_name(ids, 0x66A1, 0x06) == "AMD Radeon Pro VII"
    assert amdgpu_ids_name(ids, 0x66A1, 0x99) == "AMD Instinct MI60 / MI50"
    assert amdgpu_ids_name(ids, 0x1234, 0x00) is None


def test_normalize_pci_addresses():
    assert normalize_pci("00000000:18:00.0") == "0000:18:00.0"
    assert normalize_pci("0000:03:00.0") == "0000:03:00.0"
    assert normalize_pci("0000:C3:00.0") == "0000:c3:00.0"


@pytest.mark.parametrize("kernel", ["old", "new"])
def test_normal_mi50_sample_is_exact(tmp_path, kernel, empty_proc):
    tree = build_mi50_tree(tmp_path / kernel, kernel=kernel)
    source = AmdSysfsSource(str(tree.root), str(empty_proc))
    sample = only(source.sample((), at=12.5))
    assert sample.at == 12.5
    assert sample.pci_address == MI50_PCI
    assert sample.name == "AMD Instinct MI60 / MI50"
    assert sample.source == "amdgpu-sysfs"
    assert sample.vram_used_bytes == MI50_VRAM_USED
    assert sample.vram_total_bytes == MI50_VRAM_TOTAL
    assert sample.gtt_used_bytes == MI50_GTT_USED
    assert (sample.edge_c, sample.junction_c, sample.mem_c) == (62.0, 78.0, 70.0)
    assert (sample.power_w, sample.power_cap_w) == (187.0, 300.0)
    assert (sample.gpu_busy_percent, sample.mem_busy_percent) == (97.0, 35.0)
    assert (sample.sclk_mhz, sample.mclk_mhz) == (1725.0, 1000.0)
    assert sample.throttle_reasons == ()
    assert sample.process_vram_bytes is None
    # TELEMETRY.md's example limits (the published MI50 outputs carry none).
    assert (sample.edge_crit_c, sample.junction_crit_c, sample.mem_crit_c) == (100.0, 110.0, 95.0)
    assert (sample.edge_emergency_c, sample.junction_emergency_c, sample.mem_emergency_c) == (
        105.0, 115.0, 100.0)
    assert (sample.gtt_used_bytes, sample.gtt_total_bytes) == (MI50_GTT_USED, 65857228800)
    assert sample.fan_rpm is None
    assert dict(sample.missing) == {
        "process_vram_bytes": "no benchmark process watched",
        "fan_rpm": "no fan: the driver reports none (fan1_input absent)"}


def test_throttling_mi50_reports_words(tmp_path, empty_proc):
    tree = build_mi50_tree(tmp_path / "hot", throttle_status=0x08)
    sample = only(AmdSysfsSource(str(tree.root), str(empty_proc)).sample())
    assert sample.throttle_reasons == ("HBM temperature",)
    assert sample.throttled


def test_missing_optional_files_give_none_with_reasons(tmp_path, empty_proc):
    tree = build_mi50_tree(tmp_path / "bare", with_optional=False)
    sample = only(AmdSysfsSource(str(tree.root), str(empty_proc)).sample())
    assert sample.mem_c is None
    assert sample.power_cap_w is None
    assert sample.mem_busy_percent is None
    assert sample.throttle_reasons is None
    # freq1/freq2 are absent: the clocks come from the current pp_dpm levels.
    assert (sample.sclk_mhz, sample.mclk_mhz) == (1725.0, 1000.0)
    assert (sample.edge_c, sample.junction_c, sample.power_w) == (62.0, 78.0, 187.0)
    no_mem = "this card reports no memory temperature (no hwmon temp*_input labelled mem)"
    assert dict(sample.missing) == {
        "mem_c": no_mem, "mem_crit_c": no_mem, "mem_emergency_c": no_mem,
        "fan_rpm": "no fan: the driver reports none (fan1_input absent)",
        "power_cap_w": "driver does not provide power1_cap",
        "mem_busy_percent": "driver does not provide mem_busy_percent",
        "throttle_reasons": "driver does not provide gpu_metrics",
        "process_vram_bytes": "no benchmark process watched",
    }


def test_empty_file_gives_none_and_recovers(mi50, empty_proc):
    source = AmdSysfsSource(str(mi50.root), str(empty_proc))
    mi50.make_empty("mem_info_gtt_used")
    sample = only(source.sample())
    assert sample.gtt_used_bytes is None
    assert sample.missing["gtt_used_bytes"] == f"{mi50.device}/mem_info_gtt_used is empty"
    mi50.restore("mem_info_gtt_used")
    assert only(source.sample()).gtt_used_bytes == MI50_GTT_USED


def test_eio_gives_none_and_recovers_next_tick(mi50, empty_proc):
    source = AmdSysfsSource(str(mi50.root), str(empty_proc))
    mi50.break_with_eio("hwmon/power1_cap")
    sample = only(source.sample())
    assert sample.power_cap_w is None
    assert sample.missing["power_cap_w"] == (
        f"I/O error reading {mi50.hwmon}/power1_cap (GPU busy or resetting)")
    assert sample.power_w == 187.0
    mi50.restore("hwmon/power1_cap")
    recovered = only(source.sample())
    assert recovered.power_cap_w == 300.0
    assert "power_cap_w" not in recovered.missing


def test_eio_on_gpu_metrics_loses_only_throttling(mi50, empty_proc):
    source = AmdSysfsSource(str(mi50.root), str(empty_proc))
    mi50.break_with_eio("gpu_metrics")
    sample = only(source.sample())
    assert sample.throttle_reasons is None
    assert sample.missing["throttle_reasons"] == (
        f"I/O error reading {mi50.device}/gpu_metrics (GPU busy or resetting)")
    assert (sample.edge_c, sample.junction_c, sample.mem_c) == (62.0, 78.0, 70.0)


def test_failing_hwmon_file_falls_back_to_gpu_metrics(mi50, empty_proc):
    source = AmdSysfsSource(str(mi50.root), str(empty_proc))
    mi50.break_with_eio("hwmon/temp2_input")
    mi50.make_empty("gpu_busy_percent")
    sample = only(source.sample())
    assert sample.junction_c == 78.0  # gpu_metrics temperature_hotspot
    assert sample.gpu_busy_percent == 97.0  # gpu_metrics average_gfx_activity
    assert "junction_c" not in sample.missing and "gpu_busy_percent" not in sample.missing


def test_a_directory_where_a_value_should_be(mi50, empty_proc):
    source = AmdSysfsSource(str(mi50.root), str(empty_proc))
    mi50.make_directory("mem_info_vram_used")
    sample = only(source.sample())
    assert sample.vram_used_bytes is None
    assert sample.missing["vram_used_bytes"] == (
        f"{mi50.device}/mem_info_vram_used is a directory, not a value")


def test_garbage_in_a_file_is_named(mi50, empty_proc):
    (mi50.hwmon / "temp1_input").write_text("N/A\n")
    sample = only(AmdSysfsSource(str(mi50.root), str(empty_proc)).sample())
    assert sample.edge_c == 62.0  # from gpu_metrics
    (mi50.device / "gpu_metrics").unlink()
    sample = only(AmdSysfsSource(str(mi50.root), str(empty_proc)).sample())
    assert sample.edge_c is None
    assert sample.missing["edge_c"] == f"{mi50.hwmon}/temp1_input holds 'N/A', not a number"


def test_no_amd_card_makes_the_source_unavailable(tmp_path):
    (tmp_path / "sys/class/drm").mkdir(parents=True)
    source = AmdSysfsSource(str(tmp_path))
    assert not source.available
    assert source.unavailable_reason == f"no AMD GPU with the amdgpu driver under {tmp_path}/sys/class/drm"
    bare = AmdSysfsSource(str(tmp_path / "nothing"))
    assert bare.unavailable_reason == f"no {tmp_path}/nothing/sys/class/drm: no GPU driver loaded"


def test_process_vram_from_kfd(mi50, empty_proc):
    add_kfd(mi50.root, {FAKE_PID: 12_884_901_888, 5151: 1_000})
    source = AmdSysfsSource(str(mi50.root), str(empty_proc))
    assert source.process_vram.kfd_gpu_ids() == {MI50_KFD_GPU_ID: MI50_PCI}
    sample = only(source.sample([FAKE_PID]))
    assert sample.process_vram_bytes == 12_884_901_888
    assert "process_vram_bytes" not in sample.missing
    both = only(source.sample([FAKE_PID, 5151]))
    assert both.process_vram_bytes == 12_884_901_888 + 1_000


def test_process_vram_from_drm_fdinfo(mi50, tmp_path):
    proc = tmp_path / "proc"
    add_fdinfo_process(proc, FAKE_PID, [
        {"drm-pdev": MI50_PCI, "drm-client-id": "7", "drm-memory-vram": "1048576 KiB",
         "drm-memory-gtt": "2048 KiB"},
        # A duplicated descriptor of the same client: counted once.
        {"drm-pdev": MI50_PCI, "drm-client-id": "7", "drm-memory-vram": "1048576 KiB"},
        {"drm-pdev": MI50_PCI, "drm-client-id": "8", "drm-memory-vram": "2048 KiB"},
        # Another GPU's client does not count for the MI50.
        {"drm-pdev": "0000:43:00.0", "drm-client-id": "9", "drm-memory-vram": "4 MiB"},
    ])
    source = AmdSysfsSource(str(mi50.root), str(proc))
    sample = only(source.sample([FAKE_PID]))
    assert sample.process_vram_bytes == 1048576 * 1024 + 2048 * 1024

    # A new DRM descriptor changes the set of open files: it is found at the next tick.
    (proc / str(FAKE_PID) / "fdinfo/20").write_text(
        "pos:\t0\ndrm-driver:\tamdgpu\ndrm-pdev:\t0000:03:00.0\ndrm-client-id:\t11\n"
        "drm-memory-vram:\t3 MiB\n")
    assert only(source.sample([FAKE_PID])).process_vram_bytes == (
        1048576 * 1024 + 2048 * 1024 + 3 * 1024 ** 2)


def test_kfd_is_preferred_over_fdinfo_for_the_same_gpu(mi50, tmp_path):
    proc = tmp_path / "proc"
    add_fdinfo_process(proc, FAKE_PID, [
        {"drm-pdev": MI50_PCI, "drm-client-id": "3", "drm-memory-vram": "8192 KiB"}])
    add_kfd(mi50.root, {FAKE_PID: 7_000_000_000})
    assert only(AmdSysfsSource(str(mi50.root), str(proc)).sample([FAKE_PID])).process_vram_bytes == 7_000_000_000


def test_fdinfo_without_memory_keys_is_unknown_not_zero(mi50, tmp_path):
    proc = tmp_path / "proc"
    add_fdinfo_process(proc, FAKE_PID, [{"drm-pdev": MI50_PCI, "drm-client-id": "3"}])
    sample = only(AmdSysfsSource(str(mi50.root), str(proc)).sample([FAKE_PID]))
    assert sample.process_vram_bytes is None
    assert sample.missing["process_vram_bytes"] == (
        "this kernel's DRM fdinfo has no drm-memory-vram (needs Linux 6.x)")


def test_real_process_without_gpu_files_holds_zero_vram(mi50):
    # This test process, read through the real /proc: no DRM client, so a measured zero.
    sample = only(AmdSysfsSource(str(mi50.root), "/proc").sample([os.getpid()]))
    assert sample.process_vram_bytes == 0
    assert "process_vram_bytes" not in sample.missing


def test_two_cards_are_sampled_in_card_order(tmp_path, empty_proc):
    root = tmp_path / "two"
    build_mi50_tree(root)
    build_mi50_tree(root, card="card2", pci="0000:43:00.0", throttle_status=0x2000)
    samples = AmdSysfsSource(str(root), str(empty_proc)).sample()
    assert [(s.pci_address, s.throttle_reasons) for s in samples] == [
        (MI50_PCI, ()), ("0000:43:00.0", ("power limit (PPT)",))]
