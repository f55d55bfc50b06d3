"""Field layouts of every ``gpu_metrics`` revision an amdgpu card reports, as tables.

Source: the Linux kernel's ``drivers/gpu/drm/amd/include/kgd_pp_interface.h``
(``struct gpu_metrics_v1_0`` .. ``v1_8``, ``v2_0`` .. ``v2_4``, ``v3_0``, and the
``amdgpu_xcp_metrics`` structs nested in v1_6 and later). The structs are plain C (not
packed): every field sits at its natural alignment and the struct is padded to its widest
member, so offsets are computed here from the tables, the way a C compiler lays them out.
The kernel comments that v1_0 and v2_0 are "not naturally aligned"; that is about their
field order (v1_0 starts with a u64 right after the 4-byte header, leaving 4 bytes of
padding), not about packing.

Who reports what (from the kernel's ``*_get_gpu_metrics`` functions): v1_0 Vega 20
(Radeon VII, MI50/MI60) and, on kernels before 5.14, Navi 1x / Arcturus / Sienna Cichlid;
v1_1..v1_3 RDNA 1-4 and MI100/MI200 dGPUs; v1_4..v1_8 MI300-class and later; v2_0 Renoir;
v2_1..v2_4 Van Gogh, Yellow Carp/Rembrandt, Phoenix and other APUs; v3_0 Strix-class APUs.
v1_9 (attribute-encoded, a variable list) is not a fixed layout and is not decoded.

Each line of a table is ``"<type> <name>"`` or ``"<type> <name>[<count>]"``; a type is
``u8``/``u16``/``u32``/``u64`` or the name of a nested struct below.
"""

from __future__ import annotations

from dataclasses import dataclass

_SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}

_TEMPS_V1 = ["u16 temperature_edge", "u16 temperature_hotspot", "u16 temperature_mem",
             "u16 temperature_vrgfx", "u16 temperature_vrsoc", "u16 temperature_vrmem"]
_ACTIVITY_V1 = ["u16 average_gfx_activity", "u16 average_umc_activity",
                "u16 average_mm_activity"]
_CLOCKS_V1 = [f"u16 average_{c}_frequency" for c in
              ("gfxclk", "socclk", "uclk", "vclk0", "dclk0", "vclk1", "dclk1")] + [
    f"u16 current_{c}" for c in ("gfxclk", "socclk", "uclk", "vclk0", "dclk0", "vclk1", "dclk1")]
_HEAD_DC = ["u16 temperature_hotspot", "u16 temperature_mem", "u16 temperature_vrsoc",
            "u16 curr_socket_power", "u16 average_gfx_activity", "u16 average_umc_activity"]
_RESIDENCY = ["u32 accumulation_counter", "u32 prochot_residency_acc", "u32 ppt_residency_acc",
              "u32 socket_thm_residency_acc", "u32 vr_thm_residency_acc",
              "u32 hbm_thm_residency_acc"]
_LINKS_DC = ["u16 pcie_link_width", "u16 pcie_link_speed", "u16 xgmi_link_width",
             "u16 xgmi_link_speed", "u32 gfx_activity_acc", "u32 mem_activity_acc",
             "u64 pcie_bandwidth_acc", "u64 pcie_bandwidth_inst", "u64 pcie_l0_to_recov_count_acc",
             "u64 pcie_replay_count_acc", "u64 pcie_replay_rover_count_acc"]
_NAK = ["u32 pcie_nak_sent_count_acc", "u32 pcie_nak_rcvd_count_acc"]
_XGMI = ["u64 xgmi_read_data_acc[8]", "u64 xgmi_write_data_acc[8]"]
_CLOCKS_DC = ["u16 current_gfxclk[8]", "u16 current_socclk[4]", "u16 current_vclk0[4]",
              "u16 current_dclk0[4]", "u16 current_uclk"]
_TEMPS_V2 = ["u16 temperature_gfx", "u16 temperature_soc", "u16 temperature_core[8]",
             "u16 temperature_l3[2]"]
_ACTIVITY_V2 = ["u16 average_gfx_activity", "u16 average_mm_activity"]
_POWER_V2 = ["u16 average_socket_power", "u16 average_cpu_power", "u16 average_soc_power",
             "u16 average_gfx_power", "u16 average_core_power[8]"]
_CLOCKS_V2 = [f"u16 average_{c}_frequency" for c in
              ("gfxclk", "socclk", "uclk", "fclk", "vclk", "dclk")] + [
    f"u16 current_{c}" for c in ("gfxclk", "socclk", "uclk", "fclk", "vclk", "dclk")] + [
    "u16 current_coreclk[8]", "u16 current_l3clk[2]"]
_AVG_TEMPS_V2 = ["u16 average_temperature_gfx", "u16 average_temperature_soc",
                 "u16 average_temperature_core[8]", "u16 average_temperature_l3[2]"]

STRUCTS: dict[str, list[str]] = {
    "xcp_v1_0": ["u32 gfx_busy_inst[8]", "u16 jpeg_busy[32]", "u16 vcn_busy[4]",
                 "u64 gfx_busy_acc[8]"],
    "xcp_v1_1": ["u32 gfx_busy_inst[8]", "u16 jpeg_busy[32]", "u16 vcn_busy[4]",
                 "u64 gfx_busy_acc[8]", "u64 gfx_below_host_limit_acc[8]"],
    "xcp_v1_2": ["u32 gfx_busy_inst[8]", "u16 jpeg_busy[40]", "u16 vcn_busy[4]",
                 "u64 gfx_busy_acc[8]", "u64 gfx_below_host_limit_ppt_acc[8]",
                 "u64 gfx_below_host_limit_thm_acc[8]", "u64 gfx_low_utilization_acc[8]",
                 "u64 gfx_below_host_limit_total_acc[8]"],
}

_V1_1 = [*_TEMPS_V1, *_ACTIVITY_V1, "u16 average_socket_power", "u64 energy_accumulator",
         "u64 system_clock_counter", *_CLOCKS_V1, "u32 throttle_status",
         "u16 current_fan_speed", "u16 pcie_link_width", "u16 pcie_link_speed", "u16 padding",
         "u32 gfx_activity_acc", "u32 mem_activity_acc", "u16 temperature_hbm[4]"]
_V1_2 = [*_V1_1, "u64 firmware_timestamp"]
_V1_7_HEAD = [*_HEAD_DC, "u64 mem_max_bandwidth", "u64 energy_accumulator",
              "u64 system_clock_counter", *_RESIDENCY, "u32 gfxclk_lock_status", *_LINKS_DC,
              *_NAK, *_XGMI, "u16 xgmi_link_status[8]", "u16 padding",
              "u64 firmware_timestamp", *_CLOCKS_DC, "u16 num_partition"]
_V2_1 = [*_TEMPS_V2, *_ACTIVITY_V2, "u64 system_clock_counter", *_POWER_V2, *_CLOCKS_V2,
         "u32 throttle_status", "u16 fan_pwm", "u16 padding[3]"]
_V2_2 = [*_V2_1, "u64 indep_throttle_status"]
_V2_3 = [*_V2_2, *_AVG_TEMPS_V2]

# (format, content) -> one or more layouts. v1_6 changed shape in the kernel without a new
# revision number (vcn/jpeg activity and throttle_status gave way to per-partition stats),
# so the header's structure_size picks between its two forms.
TABLES: dict[tuple[int, int], list[list[str]]] = {
    (1, 0): [["u64 system_clock_counter", *_TEMPS_V1, *_ACTIVITY_V1,
              "u16 average_socket_power", "u32 energy_accumulator", *_CLOCKS_V1,
              "u32 throttle_status", "u16 current_fan_speed", "u8 pcie_link_width",
              "u8 pcie_link_speed"]],
    (1, 1): [_V1_1],
    (1, 2): [_V1_2],
    (1, 3): [[*_V1_2, "u16 voltage_soc", "u16 voltage_gfx", "u16 voltage_mem", "u16 padding1",
              "u64 indep_throttle_status"]],
    (1, 4): [[*_HEAD_DC, "u16 vcn_activity[4]", "u64 energy_accumulator",
              "u64 system_clock_counter", "u32 throttle_status", "u32 gfxclk_lock_status",
              *_LINKS_DC, *_XGMI, "u64 firmware_timestamp", *_CLOCKS_DC, "u16 padding"]],
    (1, 5): [[*_HEAD_DC, "u16 vcn_activity[4]", "u16 jpeg_activity[32]",
              "u64 energy_accumulator", "u64 system_clock_counter", "u32 throttle_status",
              "u32 gfxclk_lock_status", *_LINKS_DC, *_NAK, *_XGMI, "u64 firmware_timestamp",
              *_CLOCKS_DC, "u16 padding"]],
    (1, 6): [[*_HEAD_DC, "u16 vcn_activity[4]", "u16 jpeg_activity[32]",
              "u64 energy_accumulator", "u64 system_clock_counter", *_RESIDENCY,
              "u32 throttle_status", "u32 gfxclk_lock_status", *_LINKS_DC, *_NAK, *_XGMI,
              "u64 firmware_timestamp", *_CLOCKS_DC, "u16 padding"],
             [*_HEAD_DC, "u64 energy_accumulator", "u64 system_clock_counter", *_RESIDENCY,
              "u32 gfxclk_lock_status", *_LINKS_DC, *_NAK, *_XGMI, "u64 firmware_timestamp",
              *_CLOCKS_DC, "u16 num_partition", "xcp_v1_0 xcp_stats[8]",
              "u32 pcie_lc_perf_other_end_recovery"]],
    (1, 7): [[*_V1_7_HEAD, "xcp_v1_1 xcp_stats[8]", "u32 pcie_lc_perf_other_end_recovery"]],
    (1, 8): [[*_V1_7_HEAD, "xcp_v1_2 xcp_stats[8]", "u32 pcie_lc_perf_other_end_recovery"]],
    (2, 0): [["u64 system_clock_counter", *_TEMPS_V2, *_ACTIVITY_V2, *_POWER_V2, *_CLOCKS_V2,
              "u32 throttle_status", "u16 fan_pwm", "u16 padding"]],
    (2, 1): [_V2_1],
    (2, 2): [_V2_2],
    (2, 3): [_V2_3],
    (2, 4): [[*_V2_3, "u16 average_cpu_voltage", "u16 average_soc_voltage",
              "u16 average_gfx_voltage", "u16 average_cpu_current", "u16 average_soc_current",
              "u16 average_gfx_current"]],
    (3, 0): [["u16 temperature_gfx", "u16 temperature_soc", "u16 temperature_core[16]",
              "u16 temperature_skin", "u16 average_gfx_activity", "u16 average_vcn_activity",
              "u16 average_ipu_activity[8]", "u16 average_core_c0_activity[16]",
              "u16 average_dram_reads", "u16 average_dram_writes", "u16 average_ipu_reads",
              "u16 average_ipu_writes", "u64 system_clock_counter", "u32 average_socket_power",
              "u16 average_ipu_power", "u32 average_apu_power", "u32 average_gfx_power",
              "u32 average_dgpu_power", "u32 average_all_core_power",
              "u16 average_core_power[16]", "u16 average_sys_power", "u16 stapm_power_limit",
              "u16 current_stapm_power_limit", "u16 average_gfxclk_frequency",
              "u16 average_socclk_frequency", "u16 average_vpeclk_frequency",
              "u16 average_ipuclk_frequency", "u16 average_fclk_frequency",
              "u16 average_vclk_frequency", "u16 average_uclk_frequency",
              "u16 average_mpipu_frequency", "u16 current_coreclk[16]",
              "u16 current_core_maxfreq", "u16 current_gfx_maxfreq",
              "u32 throttle_residency_prochot", "u32 throttle_residency_spl",
              "u32 throttle_residency_fppt", "u32 throttle_residency_sppt",
              "u32 throttle_residency_thm_core", "u32 throttle_residency_thm_gfx",
              "u32 throttle_residency_thm_soc", "u32 time_filter_alphavalue"]],
}


@dataclass(frozen=True)
class Field:
    """One scalar (or array element run) at a byte offset: ``count`` values of ``size`` bytes."""

    name: str
    offset: int
    size: int
    count: int  # 1 for a scalar


@dataclass(frozen=True)
class Layout:
    size: int
    fields: tuple[Field, ...]


def _parse_line(line: str) -> tuple[str, str, int]:
    kind, spec = line.split()
    name, _, count = spec.partition("[")
    return kind, name, int(count.rstrip("]")) if count else 1


def _layout_of(lines: list[str], prefix: str = "") -> tuple[list[Field], int, int]:
    """(fields, size, alignment) of a C struct whose header is not included."""
    fields: list[Field] = []
    offset, align = 0, 1
    for line in lines:
        kind, name, count = _parse_line(line)
        if kind in _SIZES:
            size = _SIZES[kind]
            offset = -(-offset // size) * size
            fields.append(Field(prefix + name, offset, size, count))
            offset += size * count
            align = max(align, size)
            continue
        inner, inner_size, inner_align = _layout_of(STRUCTS[kind])
        offset = -(-offset // inner_align) * inner_align
        for index in range(count):
            base = offset + index * inner_size
            fields += [Field(f"{prefix}{name}[{index}].{f.name}", base + f.offset, f.size,
                             f.count) for f in inner]
        offset += inner_size * count
        align = max(align, inner_align)
    return fields, -(-offset // align) * align, align


def build_layout(lines: list[str]) -> Layout:
    """The layout of a gpu_metrics struct: a 4-byte header, then the table's fields."""
    header = ["u16 structure_size", "u8 format_revision", "u8 content_revision"]
    fields, size, _ = _layout_of(header + lines)
    return Layout(size=size, fields=tuple(fields[3:]))


LAYOUTS: dict[tuple[int, int], tuple[Layout, ...]] = {
    revision: tuple(build_layout(lines) for lines in tables)
    for revision, tables in TABLES.items()
}
