"""gpu_metrics: every revision's layout (from the kernel's kgd_pp_interface.h), the units of
each family, throttle bits in words, and a published real blob."""

from __future__ import annotations

import struct

import pytest
from sysfs_fixtures import build_mi50_tree, gpu_metrics_blob, hexdump_bytes, published

from backends.telemetry.gpu_metrics import (
    UnsupportedMetrics,
    decode_gpu_metrics,
    decode_vega20_throttle,
    throttle_reasons,
)
from backends.telemetry.gpu_metrics_layouts import LAYOUTS
from backends.telemetry.sysfs import AmdSysfsSource

_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}


def blob_for(revision: tuple[int, int], values: dict[str, int | list[int]],
             form: int = 0) -> bytes:
    """A blob of that revision: all fields unfilled (0xFF..), then ``values`` set by name."""
    layout = LAYOUTS[revision][form]
    blob = bytearray(b"\xff" * layout.size)
    struct.pack_into("<HBB", blob, 0, layout.size, *revision)
    fields = {f.name: f for f in layout.fields}
    for name, value in values.items():
        spec = fields[name]
        items = value if isinstance(value, list) else [value]
        struct.pack_into("<" + _FORMATS[spec.size] * len(items), blob, spec.offset, *items)
    return bytes(blob)


def test_layout_sizes_match_the_kernel_and_real_cards():
    sizes = {revision: [layout.size for layout in layouts] for revision, layouts in LAYOUTS.items()}
    # 80: sizeof(struct gpu_metrics_v1_0), what vega20_get_gpu_metrics returns; 120: the
    # published MI100 v1.3 blob below; 120 and 264: the v2.1 (Phoenix) and v3.0 (Strix Point)
    # headers of the real sysfs snapshots in LACT's tests/snapshots/amd.
    assert sizes[(1, 0)] == [80]
    assert sizes[(1, 3)] == [120]
    assert sizes[(2, 1)] == [120]
    assert sizes[(3, 0)] == [264]
    assert sizes == {(1, 0): [80], (1, 1): [96], (1, 2): [104], (1, 3): [120], (1, 4): [288],
                     (1, 5): [360], (1, 6): [384, 1664], (1, 7): [2208], (1, 8): [3872],
                     (2, 0): [120], (2, 1): [120], (2, 2): [128], (2, 3): [152],
                     (2, 4): [168], (3, 0): [264]}


def test_published_mi100_blob_decodes_field_by_field():
    first = decode_gpu_metrics(hexdump_bytes(published("mi100-gpu-metrics-v1.3",
                                                       "gpu-metrics-1.hexdump")))
    assert (first.revision, first.structure_size) == ("v1.3", 120)
    raw = first.raw
    assert [raw[f"temperature_{s}"] for s in ("edge", "hotspot", "mem", "vrgfx", "vrsoc",
                                              "vrmem")] == [45, 49, 45, 46, 45, 42]
    assert (raw["average_socket_power"], raw["energy_accumulator"]) == (36, 59231)
    assert raw["system_clock_counter"] == 0x0181_6CF4_F420
    assert (raw["average_gfxclk_frequency"], raw["average_socclk_frequency"],
            raw["average_uclk_frequency"]) == (300, 1000, 1200)
    assert (raw["average_vclk1_frequency"], raw["temperature_hbm"]) == (None, (None,) * 4)
    assert (raw["pcie_link_width"], raw["pcie_link_speed"]) == (16, 160)  # x16, 16.0 GT/s
    assert (raw["throttle_status"], raw["indep_throttle_status"], raw["current_fan_speed"]) == (
        0, 0, 0)
    assert (first.edge_c, first.hotspot_c, first.mem_c, first.socket_power_w) == (
        45.0, 49.0, 45.0, 36.0)
    assert throttle_reasons(first, vega20=False) == ((), "")
    second = decode_gpu_metrics(hexdump_bytes(published("mi100-gpu-metrics-v1.3",
                                                        "gpu-metrics-2.hexdump")))
    assert (second.value("energy_accumulator"), second.socket_power_w) == (59601, 35.0)


@pytest.mark.parametrize("revision", [(1, 0), (1, 1), (1, 2), (1, 3)])
def test_dgpu_revisions_in_degrees_and_watts(revision):
    metrics = decode_gpu_metrics(blob_for(revision, {
        "temperature_edge": 61, "temperature_hotspot": 74, "temperature_mem": 68,
        "average_gfx_activity": 99, "average_socket_power": 150, "current_gfxclk": 1700,
        "current_uclk": 1000, "current_fan_speed": 1450}))
    assert (metrics.edge_c, metrics.hotspot_c, metrics.mem_c) == (61.0, 74.0, 68.0)
    assert (metrics.gfx_activity_pct, metrics.socket_power_w) == (99.0, 150.0)
    assert (metrics.gfxclk_mhz, metrics.uclk_mhz, metrics.fan_rpm) == (1700.0, 1000.0, 1450.0)
    assert metrics.umc_activity_pct is None  # left unfilled: 0xFFFF


@pytest.mark.parametrize(("revision", "form"), [((1, 4), 0), ((1, 5), 0), ((1, 6), 0),
                                                ((1, 6), 1), ((1, 7), 0), ((1, 8), 0)])
def test_datacenter_revisions_have_no_edge_and_per_instance_clocks(revision, form):
    metrics = decode_gpu_metrics(blob_for(revision, {
        "temperature_hotspot": 52, "temperature_mem": 47, "curr_socket_power": 540,
        "average_gfx_activity": 87, "current_gfxclk": [1400, 2100, 2000, 0, 0, 0, 0, 0],
        "current_uclk": 1300}, form))
    assert (metrics.edge_c, metrics.hotspot_c, metrics.mem_c) == (None, 52.0, 47.0)
    assert (metrics.socket_power_w, metrics.gfx_activity_pct) == (540.0, 87.0)
    assert (metrics.gfxclk_mhz, metrics.uclk_mhz) == (2100.0, 1300.0)  # the fastest instance


@pytest.mark.parametrize("revision", [(2, 0), (2, 1), (2, 2), (2, 3), (2, 4)])
def test_apu_v2_revisions_in_centidegrees_milliwatts_centipercent(revision):
    metrics = decode_gpu_metrics(blob_for(revision, {
        "temperature_gfx": 4250, "average_gfx_activity": 3150, "average_socket_power": 15000,
        "current_gfxclk": 2700, "current_uclk": 2800}))
    assert (metrics.edge_c, metrics.gfx_activity_pct, metrics.socket_power_w) == (42.5, 31.5, 15.0)
    assert (metrics.gfxclk_mhz, metrics.uclk_mhz) == (2700.0, 2800.0)


def test_apu_v3_revision():
    metrics = decode_gpu_metrics(blob_for((3, 0), {
        "temperature_gfx": 3812, "average_gfx_activity": 23, "average_socket_power": 41000,
        "average_gfxclk_frequency": 2900, "average_uclk_frequency": 1000}))
    assert (metrics.edge_c, metrics.gfx_activity_pct, metrics.socket_power_w) == (38.12, 23.0, 41.0)
    assert (metrics.gfxclk_mhz, metrics.uclk_mhz) == (2900.0, 1000.0)
    assert throttle_reasons(metrics, vega20=False) == (
        None, "gpu_metrics v3.0 reports throttle residency counters, not a throttle status")


def test_independent_throttle_bits_in_words():
    hot = decode_gpu_metrics(blob_for((1, 3), {"indep_throttle_status": (1 << 36) | (1 << 34),
                                               "throttle_status": 0x1234}))
    assert throttle_reasons(hot, vega20=False) == (
        ("memory temperature", "hotspot temperature"), "")
    apu = decode_gpu_metrics(blob_for((2, 2), {"indep_throttle_status": 1 << 4}))
    assert throttle_reasons(apu, vega20=False) == (("sustained power limit (SPL)",), "")


def test_chip_specific_throttle_words_are_not_guessed():
    mi300 = decode_gpu_metrics(blob_for((1, 4), {"throttle_status": 0x80}))
    assert throttle_reasons(mi300, vega20=False) == (None, (
        "throttle_status 0x00000080 (v1.4) uses this chip's own bit layout, which llamaduel "
        "does not decode"))
    idle = decode_gpu_metrics(blob_for((1, 4), {"throttle_status": 0}))
    assert throttle_reasons(idle, vega20=False) == ((), "")
    # A Navi 1x on an old kernel also reported v1.0, with other bits than Vega 20's.
    navi = decode_gpu_metrics(blob_for((1, 0), {"throttle_status": 0x2}))
    assert throttle_reasons(navi, vega20=False)[0] is None
    assert throttle_reasons(navi, vega20=True) == (("edge temperature",), "")
    newer = decode_gpu_metrics(blob_for((1, 6), {"hbm_thm_residency_acc": 7}, form=1))
    assert throttle_reasons(newer, vega20=False)[1].endswith("not a throttle status")


def test_vega20_throttle_bits():
    # TELEMETRY.md once gave the HBM bit wrongly; the smu11 Vega 20 header has bit 2 hotspot
    # (0x04) and bit 3 HBM (0x08).
    metrics = decode_gpu_metrics(gpu_metrics_blob(0x08))
    assert throttle_reasons(metrics, vega20=True) == (("HBM temperature",), "")
    assert decode_vega20_throttle(0x04) == ("hotspot temperature",)
    assert decode_vega20_throttle(0x2008) == ("HBM temperature", "power limit (PPT)")
    assert decode_vega20_throttle(0x1_0002) == ("edge temperature", "throttle bit 16")
    unfilled = decode_gpu_metrics(gpu_metrics_blob(0xFFFFFFFF))
    assert throttle_reasons(unfilled, vega20=True) == (
        None, "firmware does not fill throttle_status")


def test_example_mi50_blob():
    metrics = decode_gpu_metrics(gpu_metrics_blob())
    assert (metrics.revision, metrics.structure_size) == ("v1.0", 80)
    assert metrics.raw["system_clock_counter"] == 123456789000
    assert (metrics.edge_c, metrics.hotspot_c, metrics.mem_c, metrics.socket_power_w) == (
        62.0, 78.0, 70.0, 187.0)
    assert (metrics.raw["energy_accumulator"], metrics.raw["average_mm_activity"]) == (None, None)
    assert (metrics.raw["pcie_link_width"], metrics.raw["pcie_link_speed"]) == (16, 80)


def test_blobs_llamaduel_cannot_read_are_one_line():
    with pytest.raises(UnsupportedMetrics, match=r"^gpu_metrics is 1 bytes, too short"):
        decode_gpu_metrics(b"\x50")
    v19 = struct.pack("<HBB", 64, 1, 9) + bytes(60)
    with pytest.raises(UnsupportedMetrics,
                       match=r"^gpu_metrics format v1\.9 is not decoded \(no fixed layout known\)$"):
        decode_gpu_metrics(v19)
    wrong_size = bytearray(gpu_metrics_blob())
    wrong_size[0] = 72
    with pytest.raises(UnsupportedMetrics,
                       match=r"^gpu_metrics format v1\.0 says 72 bytes; the known layouts have 80$"):
        decode_gpu_metrics(bytes(wrong_size))
    with pytest.raises(UnsupportedMetrics, match=r"^gpu_metrics format v1\.3 is cut short: 100 of 120"):
        decode_gpu_metrics(blob_for((1, 3), {})[:100])


def test_a_whole_page_read_back_is_cut_to_the_header_size():
    page = blob_for((1, 3), {"temperature_edge": 56}) + bytes(4096 - 120)
    assert decode_gpu_metrics(page).edge_c == 56.0


def test_unknown_revision_loses_only_throttling(tmp_path):
    tree = build_mi50_tree(tmp_path / "root")
    tree.file("gpu_metrics").write_bytes(struct.pack("<HBB", 64, 1, 9) + bytes(60))
    (sample,) = AmdSysfsSource(str(tree.root), str(tmp_path)).sample()
    assert sample.throttle_reasons is None
    assert sample.missing["throttle_reasons"] == (
        "gpu_metrics format v1.9 is not decoded (no fixed layout known)")
    assert (sample.edge_c, sample.junction_c, sample.power_w) == (62.0, 78.0, 187.0)


def test_vega20_zero_socket_power_in_the_blob_is_not_a_reading(tmp_path):
    # The MangoHud change for Radeon VII / MI50 (flightlessmango/MangoHud#2048) says these
    # cards report power 0 in gpu_metrics; TELEMETRY.md's example blob has 187 W there. With
    # no hwmon power file, a 0 from the blob must not become a measured 0 W.
    tree = build_mi50_tree(tmp_path / "root")
    blob = bytearray(gpu_metrics_blob())
    blob[34:36] = (0).to_bytes(2, "little")  # average_socket_power
    tree.file("gpu_metrics").write_bytes(bytes(blob))
    tree.remove("hwmon/power1_average")
    (sample,) = AmdSysfsSource(str(tree.root), str(tmp_path)).sample()
    assert sample.power_w is None
    assert sample.missing["power_w"] == "driver does not provide power1_average, power1_input"
