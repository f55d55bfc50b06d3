"""Build sysfs and /proc trees shaped like an AMD Instinct MI50's, for telemetry tests.

The layout and values follow the amdgpu driver (see TELEMETRY.md beside the project);
values are the documented MI50 examples. Each builder returns the tree root, to be given
to ``Telemetry(sysfs_root=...)`` / ``AmdSysfsSource(root)``.

Failures are real, not simulated inside the reader:
  * an empty file is an empty file;
  * a file that fails with EIO is a symlink to ``/proc/self/mem``: reading that at offset 0
    (an unmapped address) makes the kernel answer EIO, exactly what amdgpu returns during
    a GPU reset. ``restore()`` puts the real file back, to test recovery;
  * a "file" that is a directory gives EISDIR.
(chmod 000 would not stop root, so it is not used.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The example gpu_metrics v1_0 blob: edge 62, hotspot 78, HBM 70 °C, 97 % busy, 187 W,
# 1725/1000 MHz, not throttling.
MI50_GPU_METRICS_HEX = (
    "50000100ffffffff081a99be1c0000003e004e00460037003200300061002300ffffbb00ffffffffa406"
    "cb03e803ffffffffffffffffbd06cb03e80300000000ffffffff0000000000001050ffffffff"
)
THROTTLE_OFFSET = 68

MI50_PCI = "0000:03:00.0"
MI50_VRAM_TOTAL = 34342961152
MI50_VIS_VRAM_TOTAL = 268435456
MI50_GTT_TOTAL = 65857228800
MI50_VRAM_USED = 17179869184  # 16 GiB loaded
MI50_GTT_USED = 11583488
MI50_KFD_GPU_ID = 53601

AMDGPU_IDS = """# List of AMDGPU IDs
#
# Syntax:
# device_id,\trevision_id,\tproduct_name        <-- single tab after comma

1.0.0
66A1,\t02,\tAMD Instinct MI60 / MI50
66A1,\t06,\tAMD Radeon Pro VII
66AF,\tC1,\tAMD Radeon VII
"""


def gpu_metrics_blob(throttle_status: int | None = None) -> bytes:
    blob = bytearray.fromhex(MI50_GPU_METRICS_HEX)
    if throttle_status is not None:
        blob[THROTTLE_OFFSET:THROTTLE_OFFSET + 4] = throttle_status.to_bytes(4, "little")
    return bytes(blob)


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@dataclass
class Mi50Tree:
    """A built tree and handles to its interesting files."""

    root: Path
    device: Path  # <root>/sys/class/drm/card1/device
    hwmon: Path

    def file(self, relative: str) -> Path:
        """A file under the card's device folder (``hwmon/...`` paths go to the hwmon)."""
        if relative.startswith("hwmon/"):
            return self.hwmon / relative.removeprefix("hwmon/")
        return self.device / relative

    def break_with_eio(self, relative: str) -> None:
        """Make reads of this file fail with a real EIO from the kernel."""
        path = self.file(relative)
        self._saved = getattr(self, "_saved", {})
        if path.exists() and not path.is_symlink():
            self._saved[relative] = path.read_bytes()
            path.unlink()
        path.symlink_to("/proc/self/mem")

    def make_empty(self, relative: str) -> None:
        path = self.file(relative)
        self._saved = getattr(self, "_saved", {})
        self._saved.setdefault(relative, path.read_bytes())
        path.write_bytes(b"")

    def make_directory(self, relative: str) -> None:
        path = self.file(relative)
        self._saved = getattr(self, "_saved", {})
        self._saved.setdefault(relative, path.read_bytes())
        path.unlink()
        path.mkdir()

    def restore(self, relative: str) -> None:
        path = self.file(relative)
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            path.rmdir()
        path.write_bytes(self._saved.pop(relative))

    def remove(self, relative: str) -> None:
        self.file(relative).unlink()

    def set_throttle(self, status: int) -> None:
        self.file("gpu_metrics").write_bytes(gpu_metrics_blob(status))


def build_mi50_tree(
    root: Path,
    *,
    kernel: str = "old",
    throttle_status: int | None = None,
    with_optional: bool = True,
    card: str = "card1",
    pci: str = MI50_PCI,
) -> Mi50Tree:
    """An MI50 at ``card1`` beside an NVIDIA card (``card0``) and connector ``card1-DP-1``.

    ``kernel="old"`` gives ``power1_average`` only (Linux up to ~6.5), ``"new"`` gives
    ``power1_input`` only. ``with_optional=False`` leaves out files some kernels or cards
    lack: gpu_metrics, mem_busy_percent, freq1/freq2, temp3 (memory) and power1_cap.
    """
    drm = root / "sys/class/drm"
    _write(root / "usr/share/libdrm/amdgpu.ids", AMDGPU_IDS)

    # A non-AMD card: must be skipped by vendor.
    nvidia = drm / "card0/device"
    _write(nvidia / "vendor", "0x10de\n")
    _write(nvidia / "device", "0x2330\n")
    _write(nvidia / "uevent", "DRIVER=nvidia\nPCI_SLOT_NAME=0000:18:00.0\n")

    device = drm / card / "device"
    _write(device / "vendor", "0x1002\n")
    _write(device / "device", "0x66a1\n")
    _write(device / "revision", "0x02\n")
    _write(device / "uevent", f"DRIVER=amdgpu\nPCI_CLASS=38000\nPCI_ID=1002:66A1\n"
                              f"PCI_SUBSYS_ID=1002:0834\nPCI_SLOT_NAME={pci}\n"
                              "MODALIAS=pci:v00001002d000066A1sv00001002sd00000834bc03sc80i00\n")
    _write(device / "mem_info_vram_total", f"{MI50_VRAM_TOTAL}\n")
    _write(device / "mem_info_vram_used", f"{MI50_VRAM_USED}\n")
    _write(device / "mem_info_vis_vram_total", f"{MI50_VIS_VRAM_TOTAL}\n")
    _write(device / "mem_info_vis_vram_used", "12288000\n")
    _write(device / "mem_info_gtt_total", f"{MI50_GTT_TOTAL}\n")
    _write(device / "mem_info_gtt_used", f"{MI50_GTT_USED}\n")
    _write(device / "gpu_busy_percent", "97\n")
    _write(device / "pp_dpm_sclk", "0: 925Mhz \n1: 930Mhz \n2: 1000Mhz \n3: 1050Mhz \n"
                                   "4: 1101Mhz \n5: 1400Mhz \n6: 1500Mhz \n7: 1725Mhz *\n")
    _write(device / "pp_dpm_mclk", "0: 350Mhz \n1: 800Mhz \n2: 1000Mhz *\n")
    _write(device / "vbios_version", "113-D1631700-111\n")
    _write(device / "unique_id", "2f7c1a3e2b1d4c5e\n")
    _write(device / "power_dpm_force_performance_level", "auto\n")
    _write(device / "current_link_speed", "8.0 GT/s PCIe\n")
    _write(device / "current_link_width", "16\n")
    if with_optional:
        _write(device / "mem_busy_percent", "35\n")
        _write(device / "gpu_metrics", gpu_metrics_blob(throttle_status))

    hwmon = device / "hwmon/hwmon3"
    _write(hwmon / "name", "amdgpu\n")
    temps = {1: ("edge", 62000, 100000), 2: ("junction", 78000, 110000), 3: ("mem", 70000, 95000)}
    for index, (label, value, crit) in temps.items():
        if index == 3 and not with_optional:
            continue
        _write(hwmon / f"temp{index}_input", f"{value}\n")
        _write(hwmon / f"temp{index}_label", f"{label}\n")
        _write(hwmon / f"temp{index}_crit", f"{crit}\n")
        _write(hwmon / f"temp{index}_crit_hyst", "-273150\n")
        _write(hwmon / f"temp{index}_emergency", f"{crit + 5000}\n")
    _write(hwmon / "in0_input", "1056\n")
    _write(hwmon / "in0_label", "vddgfx\n")
    power_file = {"old": "power1_average", "new": "power1_input"}[kernel]
    _write(hwmon / power_file, "187000000\n")
    if with_optional:
        _write(hwmon / "power1_cap", "300000000\n")
        _write(hwmon / "power1_cap_max", "300000000\n")
        _write(hwmon / "power1_cap_min", "0\n")
        _write(hwmon / "freq1_input", "1725000000\n")
        _write(hwmon / "freq1_label", "sclk\n")
        _write(hwmon / "freq2_input", "1000000000\n")
        _write(hwmon / "freq2_label", "mclk\n")

    # A display connector folder: its name must not be taken for a card.
    _write(drm / f"{card}-DP-1/status", "disconnected\n")
    _write(drm / "version", "drm 1.1.0 20060810\n")
    return Mi50Tree(root=root, device=device, hwmon=hwmon)


def add_kfd(root: Path, pids_vram: dict[int, int], *, pci: str = MI50_PCI,
            gpu_id: int = MI50_KFD_GPU_ID) -> None:
    """ROCm's KFD view: a CPU node and the MI50's node, and per-process vram_<gpu_id>."""
    domain, bus, devfn = pci.split(":")
    device, function = devfn.split(".")
    location = (int(bus, 16) << 8) | (int(device, 16) << 3) | int(function)
    nodes = root / "sys/class/kfd/kfd/topology/nodes"
    _write(nodes / "0/gpu_id", "0\n")
    _write(nodes / "0/properties", "cpu_cores_count 2\nsimd_count 0\nlocation_id 0\ndomain 0\n")
    _write(nodes / "1/gpu_id", f"{gpu_id}\n")
    _write(nodes / "1/properties", f"cpu_cores_count 0\nsimd_count 240\n"
                                   f"location_id {location}\ndomain {int(domain, 16)}\n")
    for pid, amount in pids_vram.items():
        _write(root / f"sys/class/kfd/kfd/proc/{pid}/vram_{gpu_id}", f"{amount}\n")
        _write(root / f"sys/class/kfd/kfd/proc/{pid}/pasid", "32770\n")


def add_fdinfo_process(proc_root: Path, pid: int, clients: list[dict[str, str]],
                       other_fds: int = 3) -> Path:
    """A /proc/<pid>/fdinfo folder: plain files first, then one fd per DRM client dict.

    A client dict gives the fdinfo keys, e.g. {"drm-pdev": "0000:03:00.0",
    "drm-client-id": "7", "drm-memory-vram": "1048576 KiB"}.
    """
    folder = proc_root / str(pid) / "fdinfo"
    for fd in range(other_fds):
        _write(folder / str(fd), "pos:\t0\nflags:\t02\nmnt_id:\t25\nino:\t1234\n")
    for index, client in enumerate(clients):
        lines = ["pos:\t0", "flags:\t02100002", "mnt_id:\t26", "ino:\t571",
                 "drm-driver:\tamdgpu"]
        lines += [f"{key}:\t{value}" for key, value in client.items()]
        _write(folder / str(other_fds + index), "\n".join(lines) + "\n")
    return folder



# ---------------------------------------------------------------- trees from published outputs
#
# The builders below write a sysfs tree from what a real card printed (tests/data/amd/*,
# each folder's SOURCE.txt says where it was published). Where the published output gives a
# value, the tree holds exactly that value in the file the driver keeps it in; files the
# output says nothing about are left out, so the reader must cope with their absence.

DATA = Path(__file__).resolve().parent / "data" / "amd"


@dataclass
class CardSpec:
    """One card's files: values in the driver's units (milli-degrees, microwatts, Hz, bytes)."""

    pci: str
    device_id: int
    revision: int | None = None
    product_name: str | None = None
    vbios: str | None = None
    # sensor label (edge/junction/mem) -> (input, crit, emergency) in milli-degrees
    temps: dict[str, tuple[int, int | None, int | None]] | None = None
    temp_channels: dict[str, int] | None = None  # label -> hwmon channel (default 1/2/3)
    fan_rpm: int | None = None
    pwm: int | None = None
    power_uw: int | None = None
    power_file: str = "power1_average"
    cap_uw: int | None = None
    sclk_hz: int | None = None
    mclk_hz: int | None = None
    pp_dpm_sclk: str | None = None
    pp_dpm_mclk: str | None = None
    busy_percent: int | None = None
    vram_total: int | None = None
    vram_used: int | None = None
    gpu_metrics: bytes | None = None


def _hwmon_files(hwmon: Path, spec: CardSpec) -> None:
    _write(hwmon / "name", "amdgpu\n")
    channels = spec.temp_channels or {"edge": 1, "junction": 2, "mem": 3}
    for label, (value, crit, emergency) in (spec.temps or {}).items():
        index = channels[label]
        _write(hwmon / f"temp{index}_input", f"{value}\n")
        _write(hwmon / f"temp{index}_label", f"{label}\n")
        if crit is not None:
            _write(hwmon / f"temp{index}_crit", f"{crit}\n")
        if emergency is not None:
            _write(hwmon / f"temp{index}_emergency", f"{emergency}\n")
    optional = {"fan1_input": spec.fan_rpm, "pwm1": spec.pwm, spec.power_file: spec.power_uw,
                "power1_cap": spec.cap_uw, "freq1_input": spec.sclk_hz,
                "freq2_input": spec.mclk_hz}
    for name, value in optional.items():
        if value is not None:
            _write(hwmon / name, f"{value}\n")


def build_card(root: Path, card: str, spec: CardSpec, hwmon: str = "hwmon0") -> Path:
    """Write one amdgpu card under ``root`` as ``card``; returns its device folder."""
    device = root / "sys/class/drm" / card / "device"
    _write(device / "vendor", "0x1002\n")
    _write(device / "device", f"0x{spec.device_id:04x}\n")
    if spec.revision is not None:
        _write(device / "revision", f"0x{spec.revision:02x}\n")
    _write(device / "uevent", f"DRIVER=amdgpu\nPCI_ID=1002:{spec.device_id:04X}\n"
                              f"PCI_SLOT_NAME={spec.pci}\n")
    files = {"product_name": spec.product_name, "vbios_version": spec.vbios,
             "pp_dpm_sclk": spec.pp_dpm_sclk, "pp_dpm_mclk": spec.pp_dpm_mclk,
             "gpu_busy_percent": spec.busy_percent, "mem_info_vram_total": spec.vram_total,
             "mem_info_vram_used": spec.vram_used}
    for name, value in files.items():
        if value is not None:
            _write(device / name, value if isinstance(value, str) else f"{value}\n")
    if spec.gpu_metrics is not None:
        _write(device / "gpu_metrics", spec.gpu_metrics)
    _hwmon_files(device / "hwmon" / hwmon, spec)
    return device


def published(folder: str, name: str) -> str:
    return (DATA / folder / name).read_text(encoding="utf-8")


def hexdump_bytes(text: str) -> bytes:
    """The bytes of a ``hexdump -C`` listing, ``*`` (the line before, repeated) included."""
    out = bytearray()
    previous = b""
    repeat = False
    for line in text.splitlines():
        if line.strip() == "*":
            repeat = True
            continue
        parts = line.split("|")[0].split()
        if not parts:
            continue
        offset = int(parts[0], 16)
        while repeat and len(out) < offset:
            out += previous
        repeat = False
        if len(parts) == 1:  # the last line gives the length
            del out[offset:]
            break
        previous = bytes(int(value, 16) for value in parts[1:])
        out += previous
    return bytes(out)


def parse_fan2go(text: str) -> dict[str, dict[str, int]]:
    """``fan2go detect``: platform -> {"rpm", "pwm", "edge", "junction", "mem"} (milli-degC)."""
    found: dict[str, dict[str, int]] = {}
    current: dict[str, int] = {}
    for line in text.splitlines():
        words = line.split()
        if line.startswith("> Platform:"):
            current = found.setdefault(words[-1], {})
        elif len(words) >= 6 and words[3].endswith("/fan1"):
            current["rpm"], current["pwm"] = int(words[4]), int(words[5])
        elif len(words) == 4 and words[2].endswith("_input)"):
            current[words[1]] = int(words[3])
    return found


def parse_sensors(text: str) -> list[dict[str, float]]:
    """lm-sensors amdgpu blocks: {"edge", "edge_crit", "edge_emerg", ..., "fan", "power", "cap"}."""
    import re

    blocks: list[dict[str, float]] = []
    label = ""
    for line in text.splitlines():
        if line.startswith("amdgpu-pci-"):
            blocks.append({})
            continue
        head = re.match(r"^(\w+):\s+([-+\d.]+)", line)
        if head:
            label = head.group(1)
            blocks[-1][{"fan1": "fan", "PPT": "power"}.get(label, label)] = float(head.group(2))
        for key, value in re.findall(r"(crit|emerg|cap) = \+?([\d.]+)", line):
            blocks[-1][f"{label}_{key}" if key != "cap" else "cap"] = float(value)
    return blocks


def parse_rocm_smi_a(text: str, gpu: int) -> dict[str, str]:
    """``rocm-smi -a`` text: "key: value" lines of one GPU, and its supported-clock lists."""
    import re

    found: dict[str, str] = {}
    levels: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = re.match(rf"^GPU\[{gpu}\]\s*: ?(.*)$", line)
        if not match:
            continue
        body = match.group(1).strip()
        supported = re.match(r"Supported (\w+) frequencies", body)
        if supported:
            current = supported.group(1)
            levels[current] = []
        elif current and re.match(r"^\d+: ", body):
            levels[current].append(body)
        elif ":" in body:
            current = None
            key, _, value = body.rpartition(":")
            found[key.strip()] = value.strip()
    for clock, lines in levels.items():
        found[f"pp_dpm_{clock}"] = "".join(f"{level}{'' if level.endswith('*') else ' '}\n"
                                           for level in lines)
    return found


def _line_value(text: str, key: str) -> str:
    for line in text.splitlines():
        if line.strip().startswith(key):
            return line.split(":", 1)[1].split("(")[0].strip()
    raise KeyError(key)


def mi50_16gb_spec() -> CardSpec:
    """The MI50 16GB of ROCm issue 1886 (rocm-smi -a, GPU[1]; rocminfo for bus and VRAM)."""
    smi = parse_rocm_smi_a(published("mi50-16gb-rocm-issue-1886", "rocm-smi-a.txt"), 1)
    info = published("mi50-16gb-rocm-issue-1886", "rocminfo-mi50.txt")
    bdfid = int(_line_value(info, "BDFID"))
    pool_kb = int(_line_value(info, "Size"))

    def celsius(sensor: str) -> int:
        return round(float(smi[f"Temperature (Sensor {sensor}) (C)"]) * 1000)

    return CardSpec(
        pci=f"0000:{bdfid >> 8:02x}:{(bdfid >> 3) & 0x1f:02x}.{bdfid & 7}",
        device_id=int(smi["GPU ID"], 16), vbios=smi["VBIOS version"],
        temps={"edge": (celsius("edge"), None, None), "junction": (celsius("junction"), None, None),
               "mem": (celsius("memory"), None, None)},
        fan_rpm=int(smi["Fan RPM"]), pwm=int(smi["Fan Level"].split()[0]),
        # Linux 5.15 (this report's kernel) has power1_average, not power1_input.
        power_uw=round(float(smi["Average Graphics Package Power (W)"]) * 1e6),
        cap_uw=round(float(smi["Max Graphics Package Power (W)"]) * 1e6),
        pp_dpm_sclk=smi["pp_dpm_sclk"], pp_dpm_mclk=smi["pp_dpm_mclk"],
        busy_percent=int(smi["GPU use (%)"]), vram_total=pool_kb * 1024)


def nixos_workstation_specs() -> tuple[CardSpec, CardSpec]:
    """The MI50 32GB and the Radeon Pro W5700 of the nixos workstation (fan2go's hwmon
    readings; rocm-smi's concise table for power, cap and clocks)."""
    hwmon = parse_fan2go(published("mi50-32gb-nixos", "fan2go-detect.txt"))
    rows = {line.split()[2].rstrip(","): line.split()
            for line in published("mi50-32gb-nixos", "rocm-smi.txt").splitlines()
            if line[:1].isdigit() and len(line.split()) > 13}

    def spec(pci: str, platform: str, did: str) -> CardSpec:
        row, values = rows[did], hwmon[platform]
        watts, mhz = (lambda text: round(float(text.rstrip("W")) * 1e6)), (
            lambda text: int(text.removesuffix("Mhz")) * 1_000_000)
        return CardSpec(pci=pci, device_id=int(did, 16), power_file="power1_input",
                        temps={s: (values[s], None, None) for s in ("edge", "junction", "mem")},
                        fan_rpm=values["rpm"], pwm=values["pwm"], power_uw=watts(row[5]),
                        cap_uw=watts(row[13]), sclk_hz=mhz(row[9]), mclk_hz=mhz(row[10]))

    # 44:00.0 and 63:00.0: lspci in the same file, and fan2go's amdgpu-pci-04400/06300.
    return (spec("0000:44:00.0", "amdgpu-pci-04400", "0x66a1"),
            spec("0000:63:00.0", "amdgpu-pci-06300", "0x7312"))


def sensors_spec(folder: str, pci: str, device_id: int, block: int = 0,
                 power_file: str = "power1_input") -> CardSpec:
    """A card from its published lm-sensors block (temperatures with limits, fan, PPT, cap)."""
    values = parse_sensors(published(folder, "sensors.txt"))[block]

    def milli(key: str) -> int:
        return round(values[key] * 1000)

    return CardSpec(
        pci=pci, device_id=device_id,
        temps={s: (milli(s), milli(f"{s}_crit"), milli(f"{s}_emerg"))
               for s in ("edge", "junction", "mem")},
        fan_rpm=round(values["fan"]), power_uw=round(values["power"] * 1e6),
        power_file=power_file, cap_uw=round(values["cap"] * 1e6))


ENERGY_ACCUMULATOR_OFFSET = 36  # u32 in the v1_0 blob, 15.259 microjoules a count
ACCUMULATOR_J = 15.259e-6


class MovingEnergy:
    """A card at a steady ``watts``: a thread keeps its energy counter (``counter="metrics"``:
    the gpu_metrics energy_accumulator; ``"hwmon"``: hwmon energy1_input in microjoules;
    None: no counter) and its power file moving with real time, every ``period`` seconds,
    each write atomic (a new file renamed over the old), as the driver updates them."""

    def __init__(self, tree: Mi50Tree, watts: float, counter: str | None = "metrics",
                 period: float = 0.002, start_count: int = 1_000_000) -> None:
        import threading
        import time

        self.tree, self.watts, self.counter, self.period = tree, watts, counter, period
        self.start_count = start_count
        self._time = time.monotonic
        self._t0 = self._time()
        self.writes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MovingEnergy:
        self._write()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def joules(self) -> float:
        return self.watts * (self._time() - self._t0)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._write()

    def _replace(self, relative: str, data: bytes) -> None:
        path = self.tree.file(relative)
        temporary = path.with_name(path.name + ".new")
        temporary.write_bytes(data)
        temporary.replace(path)

    def _write(self) -> None:
        joules = self.joules()
        if self.counter == "metrics":
            blob = bytearray(gpu_metrics_blob())
            count = (self.start_count + round(joules / ACCUMULATOR_J)) % (1 << 32)
            blob[ENERGY_ACCUMULATOR_OFFSET:ENERGY_ACCUMULATOR_OFFSET + 4] = count.to_bytes(4, "little")
            self._replace("gpu_metrics", bytes(blob))
        elif self.counter == "hwmon":
            self._replace("hwmon/energy1_input", f"{round(joules * 1e6)}\n".encode())
        power = "power1_average" if self.tree.file("hwmon/power1_average").exists() else "power1_input"
        self._replace(f"hwmon/{power}", f"{round(self.watts * 1e6)}\n".encode())
        self.writes += 1
