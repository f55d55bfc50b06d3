"""Find llama.cpp builds and learn what each one is, without running a model.

A probe runs the build's ``llama-bench`` three times (``--version``, ``--list-devices``,
``--help``) and reads: the backend (from device names such as ``ROCm0`` or ``Vulkan0``),
the devices with their memory, the build number and commit, and which flags this version
takes (flags change between versions: newer builds replaced ``-mmp`` with ``-lm``).

A broken build is never an exception: it comes back with a one-line ``problem``. Probes
are cached by the binary's path, size and modification time (and its libraries'), in
memory and in ``probes.json`` under the user cache folder; free memory in a cached probe
is as it was then.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from backends import codec

BENCH = "llama-bench"
PROBE_TIMEOUT_S = 30.0
CACHE_VERSION = 4
# The environment a probe depends on besides the binary itself: which devices are visible
# and which Vulkan drivers and libraries the loader finds.
VISIBILITY_VARIABLES = (
    "GGML_VK_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES", "MUSA_VISIBLE_DEVICES", "VK_DRIVER_FILES", "VK_ICD_FILENAMES",
    "VK_ADD_DRIVER_FILES", "LD_LIBRARY_PATH",
)
# Device name prefixes (``ROCm0``, ``Vulkan1``) as llama-bench's "backends" field names them.
BACKEND_PREFIXES = {
    "rocm": "ROCm", "cuda": "CUDA", "vulkan": "Vulkan", "musa": "MUSA", "sycl": "SYCL",
    "metal": "Metal", "cann": "CANN", "opencl": "OpenCL", "rpc": "RPC", "blas": "BLAS",
    "webgpu": "WebGPU", "zdnn": "zDNN", "hexagon": "Hexagon",
}
# Backend libraries in a build folder, for builds too old to list their devices.
BACKEND_LIBRARIES = {
    "libggml-hip": "ROCm", "libggml-cuda": "CUDA", "libggml-vulkan": "Vulkan",
    "libggml-musa": "MUSA", "libggml-sycl": "SYCL", "libggml-metal": "Metal",
}
SOFTWARE_RENDERERS = ("llvmpipe", "lavapipe", "swiftshader", "softpipe")
ELF_MACHINES = {
    0x03: "x86 (32-bit)", 0x08: "MIPS", 0x14: "PowerPC", 0x15: "PowerPC64", 0x16: "s390x",
    0x28: "ARM (32-bit)", 0x3E: "x86_64", 0xB7: "aarch64", 0xF3: "RISC-V",
    0x102: "LoongArch",
}

_DEVICE_LINE = re.compile(r"^\s+(?P<name>[^\s:]+):\s+(?P<description>.*?)\s+"
                          r"\((?P<total>\d+) MiB, (?P<free>\d+) MiB free\)\s*$")
_FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
_MISSING_LIBRARY = re.compile(r"error while loading shared libraries: ([^:\s]+)")


@dataclass(frozen=True)
class Device:
    name: str  # as llama.cpp names it: ROCm0, Vulkan0, CUDA1
    description: str
    total_mib: int
    free_mib: int

    @property
    def is_software(self) -> bool:
        text = self.description.lower()
        return any(renderer in text for renderer in SOFTWARE_RENDERERS)


@dataclass(frozen=True)
class BuildInfo:
    name: str
    folder: Path
    bench: Path | None = None
    completion: Path | None = None
    perplexity: Path | None = None
    backend: str = "unknown"
    devices: tuple[Device, ...] = ()
    build_number: int | None = None  # None when built without git ("build 0")
    commit: str | None = None  # None when "unknown"
    version_text: str = ""
    flags: frozenset[str] = frozenset()
    env: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None
    note: str | None = None  # worth telling, not wrong (a software renderer)
    server: Path | None = None  # llama-server
    rpc_server: Path | None = None  # rpc-server (ggml-rpc-server in newer trees)
    # What makes this build a contender (the same binary may be several): the devices it
    # uses (None: llama.cpp's default; () : the CPU only), RPC servers, llama-bench settings.
    selected_devices: tuple[str, ...] | None = None
    rpc: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    split_modes: tuple[str, ...] = ()  # what -sm takes in this version (none, layer, row, tensor)
    # The ssh destination this build lives on (None: this machine) and that machine's own
    # name (``uname -n``); paths are paths there (``backends.remote_probe``).
    host: str | None = None
    machine: str | None = None

    @property
    def runnable(self) -> bool:
        return self.problem is None and self.bench is not None

    @property
    def version(self) -> str:
        """Short version for tables: ``b8467 (abc1234)``, or what the build printed."""
        if self.build_number is None and self.commit is None:
            return "unknown" if not self.version_text else "no git info"
        number = f"b{self.build_number}" if self.build_number is not None else "b?"
        return f"{number} ({self.commit})" if self.commit else number

    def supports(self, *flags: str) -> bool:
        """True when this build's llama-bench accepts any of ``flags``."""
        return any(flag in self.flags for flag in flags)

    def launch_env(self) -> dict[str, str]:
        """The environment to start this build's tools with."""
        return {**os.environ, **self.env}

    def contender_args(self) -> list[str]:
        """llama-bench arguments that make this build the contender it is: its devices
        (``-dev``), RPC servers (``--rpc``) and its own settings (``-sm row -ts 1,1``)."""
        argv: list[str] = []
        if self.rpc:  # before -dev: the RPC devices exist only once registered
            argv += ["--rpc", ",".join(self.rpc)]
        if self.selected_devices is not None:
            argv += ["-dev", "/".join(self.selected_devices) or "none"]
        return argv + list(self.settings)

    def contender_json(self) -> dict[str, Any]:
        """What this contender is beyond its build, for the journal (``as_contender``)."""
        data: dict[str, Any] = {"backend": self.backend, "version": self.version,
                                "machine": self.machine or platform.node()}
        if self.host is not None:
            data["host"] = self.host
        if self.selected_devices is not None:
            data["devices"] = list(self.selected_devices)
        if self.rpc:
            data["rpc"] = list(self.rpc)
        if self.settings:
            data["settings"] = list(self.settings)
        return data

    def as_contender(self, data: Mapping[str, Any]) -> BuildInfo:
        """This build with the devices, RPC servers and settings a journal recorded."""
        devices = data.get("devices")
        return replace(self, selected_devices=None if devices is None else tuple(map(str, devices)),
                       rpc=tuple(map(str, data.get("rpc") or ())),
                       settings=tuple(map(str, data.get("settings") or ())))


# --- parsing -----------------------------------------------------------------------------

def parse_devices(text: str) -> tuple[Device, ...] | None:
    """Devices from ``llama-bench --list-devices``; None when there is no device list."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Available devices:")
    except StopIteration:
        return None
    devices = []
    for line in lines[start + 1:]:
        match = _DEVICE_LINE.match(line)
        if match:
            devices.append(Device(match["name"], match["description"],
                                  int(match["total"]), int(match["free"])))
    return tuple(devices)


def parse_version(text: str) -> tuple[int | None, str | None, str]:
    """(build number, commit, the version line) from ``--version``.

    Two styles exist: ``version: 8467 (a1b2c3d4)`` and, in newer builds,
    ``version: 0.6.0-dev (build 0, commit unknown)``; build 0 and "unknown" mean the
    build was made outside a git checkout and come back as None.
    """
    line = next((l.strip() for l in text.splitlines() if l.strip().startswith("version:")), "")
    if not line:
        return None, None, ""
    build: int | None = None
    commit: str | None = None
    new_style = re.search(r"\(build (\d+), commit ([^)\s]+)\)", line)
    old_style = re.match(r"version:\s*(\d+)\s*\(([^)\s]+)\)", line)
    if new_style:
        build, commit = int(new_style[1]), new_style[2]
    elif old_style:
        build, commit = int(old_style[1]), old_style[2]
    if build == 0:
        build = None
    if commit in ("unknown", ""):
        commit = None
    return build, commit, line


def parse_flags(help_text: str) -> frozenset[str]:
    """Every option ``--help`` lists (``-ncmoe``, ``--n-cpu-moe``, ``-lm``, ...)."""
    flags: set[str] = set()
    for line in help_text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("-"):
            continue
        # Only the option column: stop at the first run of two spaces (the description).
        column = re.split(r"\s{2,}", stripped, maxsplit=1)[0]
        for token in _FLAG.findall(column):
            flags.add(token.rstrip(","))
    return frozenset(flags)


def parse_choices(help_text: str, flag: str) -> tuple[str, ...]:
    """The values ``--help`` lists for ``flag``: ``-sm, --split-mode <none|layer|row>``."""
    for line in help_text.splitlines():
        column = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        if flag in _FLAG.findall(column):
            match = re.search(r"<([\w|-]+)>", column)
            if match and "|" in match[1]:
                return tuple(match[1].split("|"))
    return ()


def backend_from_devices(devices: Iterable[Device]) -> str:
    """``ROCm``, ``Vulkan``, ``ROCm,Vulkan`` (llama-bench's join), or ``CPU``."""
    names: list[str] = []
    for device in devices:
        prefix = re.sub(r"\d+$", "", device.name)
        backend = BACKEND_PREFIXES.get(prefix.lower(), prefix)
        if backend not in names:
            names.append(backend)
    return ",".join(names) if names else "CPU"


def _backend_from_libraries(names: Iterable[str]) -> str | None:
    found = []
    for name in names:
        for stem, backend in BACKEND_LIBRARIES.items():
            if name.startswith(stem) and backend not in found:
                found.append(backend)
    return ",".join(found) if found else None


# --- running the probe -------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeRun:
    stdout: str
    stderr: str
    returncode: int | None  # None: timed out
    problem: str | None


def probe_outcome(what: str, out: str, err: str, code: int) -> ProbeRun:
    """A finished probe command: a crash (negative code: the signal) or a missing library
    is its problem."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return ProbeRun(out, err, code, f"{what} crashed ({name})")
    missing = _MISSING_LIBRARY.search(err) or _MISSING_LIBRARY.search(out)
    if missing:
        return ProbeRun(out, err, code, f"missing shared library {missing[1]} "
                                        f"(error while loading shared libraries)")
    return ProbeRun(out, err, code, None)


class ProbeHost(Protocol):
    """Where a probe runs its commands and looks for files: this machine, or another one
    over ssh (``backends.remote_probe``)."""

    environ: Mapping[str, str]  # the environment tools start with there, as far as known

    def run(self, argv: list[str], extra_env: Mapping[str, str], timeout: float) -> ProbeRun: ...
    def is_tool(self, path: Path) -> bool: ...
    def library_names(self, folder: Path) -> list[str]: ...


class LocalProbeHost:
    environ: Mapping[str, str] = os.environ

    def run(self, argv: list[str], extra_env: Mapping[str, str], timeout: float) -> ProbeRun:
        return _run(argv, {**os.environ, **extra_env}, timeout)

    def is_tool(self, path: Path) -> bool:
        return path.is_file() and os.access(path, os.X_OK)

    def library_names(self, folder: Path) -> list[str]:
        return sorted(p.name for p in folder.glob("libggml-*"))


LOCAL_PROBE = LocalProbeHost()


def _elf_machine(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    order = "little" if header[5] == 1 else "big"
    machine = int.from_bytes(header[18:20], order)
    return ELF_MACHINES.get(machine, f"machine type {machine:#x}")


def _exec_problem(path: Path, error: OSError) -> str:
    if error.errno == errno.ENOEXEC:
        machine = _elf_machine(path)
        here = platform.machine()
        if machine:
            return f"{path.name} is built for {machine}, this machine is {here} (exec format error)"
        return f"{path.name} is not a program this machine can run (exec format error)"
    if error.errno == errno.EACCES:
        return f"{path.name} is not executable (permission denied)"
    if error.errno == errno.ENOENT:
        return f"{path.name} is missing or its program loader is ({error.strerror})"
    return f"{path.name} could not start: {error.strerror or error}"


def _run(argv: list[str], env: Mapping[str, str], timeout: float) -> ProbeRun:
    """Run a probe command in its own process group; kill the group on time-out."""
    binary = Path(argv[0])
    what = " ".join([binary.name, *argv[1:]])
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(env), start_new_session=True,
        )
    except OSError as error:
        return ProbeRun("", "", None, _exec_problem(binary, error))
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.communicate()
        return ProbeRun("", "", None, f"{what} did not answer within {timeout:g} s (killed)")
    return probe_outcome(what, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"),
                         process.returncode)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _last_line(*texts: str) -> str:
    for text in texts:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1][:160]
    return "no output"


def find_bench(path: Path) -> Path | None:
    """``llama-bench`` in a folder (or its ``bin``), or the path itself if it names one.
    Another tool of the build (``llama-completion``) stands for its folder."""
    if path.name.startswith(BENCH) and (path.is_file() or path.is_symlink()):
        return path
    if path.is_file():
        path = path.parent
    for candidate in (path / BENCH, path / "bin" / BENCH, path / f"{BENCH}.exe"):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return None


def _find_completion(where: ProbeHost, folder: Path, env: Mapping[str, str],
                     timeout: float) -> Path | None:
    completion = folder / "llama-completion"
    if where.is_tool(completion):
        return completion
    # Before llama-completion existed, llama-cli was the plain completion tool; the newer
    # llama-cli is chat-only. The completion one lists the conversation switch.
    cli = folder / "llama-cli"
    if where.is_tool(cli):
        run = where.run([str(cli), "--help"], env, timeout)
        if run.problem is None and {"-no-cnv", "--no-conversation", "--prompt-cache"} & \
                parse_flags(run.stdout + "\n" + run.stderr):
            return cli
    return None


def _tool(where: ProbeHost, folder: Path, name: str) -> Path | None:
    path = folder / name
    return path if where.is_tool(path) else None


# --- cache ---------------------------------------------------------------------------------

_memory_cache: dict[str, dict[str, Any]] = {}
_cache_lock = threading.Lock()


def default_cache_path() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("llamaduel")) / "probes.json"


def _cache_key(bench: Path) -> str | None:
    try:
        stat = bench.stat()
    except OSError:
        return None
    # Shared-library builds can change without relinking llama-bench.
    libraries = [p for p in bench.parent.glob("lib*.so*") if p.is_file()]
    newest_library = max((p.stat().st_mtime_ns for p in libraries), default=0)
    visibility = ",".join(f"{v}={os.environ.get(v, '')}" for v in VISIBILITY_VARIABLES
                          if v in os.environ)
    return (f"v{CACHE_VERSION}|{bench.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|"
            f"{newest_library}|{visibility}")


def _load_disk_cache(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_disk_cache(path: Path, key: str, record: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _load_disk_cache(path)
        data[key] = record
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(temporary, path)
    except OSError:
        pass  # a cache that cannot be written only costs time


def clear_memory_cache() -> None:
    with _cache_lock:
        _memory_cache.clear()


# --- probing -------------------------------------------------------------------------------

GENERIC_FOLDERS = {"bin", "cmake", "release", "debug", "relwithdebinfo", "build"}


def _default_name(folder: Path) -> str:
    """A short name from the folder: ``~/llama.cpp/build-rocm/bin`` -> ``rocm``,
    ``~/llama.cpp/build/bin`` -> ``llama.cpp``."""
    parts = [p for p in folder.parts if p not in ("/", "")]
    while len(parts) > 1 and parts[-1].lower() in GENERIC_FOLDERS:
        parts.pop()
    if not parts:
        return "llama.cpp"
    last = parts[-1]
    for prefix in ("build-", "build_"):
        if last.lower().startswith(prefix) and len(last) > len(prefix):
            return last[len(prefix):]
    return last


def probe_build(folder: str | Path, name: str | None = None, *,
                timeout: float = PROBE_TIMEOUT_S, use_cache: bool = True,
                cache_path: Path | None = None) -> BuildInfo:
    """Probe the build in ``folder`` (or a path to its llama-bench). Never raises."""
    try:
        return _probe(Path(folder).expanduser(), name, timeout, use_cache, cache_path)
    except Exception as error:  # noqa: BLE001 - a bad build must never break discovery
        path = Path(folder).expanduser()
        return BuildInfo(name=name or _default_name(path), folder=path,
                         problem=f"probe failed: {type(error).__name__}: {error}")


def _probe(path: Path, name: str | None, timeout: float, use_cache: bool,
           cache_path: Path | None) -> BuildInfo:
    folder = path.parent if path.is_file() else path
    name = name or _default_name(folder)
    if not path.exists() and not path.is_symlink():
        return BuildInfo(name=name, folder=folder, problem=f"folder not found: {path}")
    bench = find_bench(path)
    if bench is None:
        return BuildInfo(name=name, folder=folder, problem=f"no {BENCH} in {path}")
    folder = bench.parent
    if not os.access(bench, os.X_OK):
        return BuildInfo(name=name, folder=folder, bench=bench,
                         problem=f"{bench.name} is not executable (chmod +x {bench})")

    key = _cache_key(bench) if use_cache else None
    cache_file = cache_path or default_cache_path()
    if key is not None:
        with _cache_lock:
            record = _memory_cache.get(key)
        if record is None:
            record = _load_disk_cache(cache_file).get(key)
        if record is not None:
            cached = _from_record(record)
            if cached is not None:
                return replace(cached, name=name)

    info = probe_tools(name, folder, bench, timeout)
    if key is not None and info.problem is None:
        record = codec.to_builtins(info)
        with _cache_lock:
            _memory_cache[key] = record
        _save_disk_cache(cache_file, key, record)
    return info


def probe_tools(name: str, folder: Path, bench: Path, timeout: float,
                where: ProbeHost = LOCAL_PROBE) -> BuildInfo:
    """What the llama-bench at ``bench`` is, from its own answers (run through ``where``)."""
    base = BuildInfo(name=name, folder=folder, bench=bench)
    version_run = where.run([str(bench), "--version"], {}, timeout)
    if version_run.problem:
        return replace(base, problem=version_run.problem)
    build_number, commit, version_text = parse_version(version_run.stderr + "\n"
                                                       + version_run.stdout)

    help_run = where.run([str(bench), "--help"], {}, timeout)
    if help_run.problem:
        return replace(base, problem=help_run.problem)
    flags = parse_flags(help_run.stdout + "\n" + help_run.stderr)
    if not version_text and not flags:
        return replace(base, problem=f"{bench.name} printed nothing for --version and --help "
                       "and exited with 0: it is not a working llama-bench")
    split_modes = parse_choices(help_run.stdout + "\n" + help_run.stderr, "--split-mode")

    found = _probe_devices(where, bench, flags, timeout)
    if isinstance(found, str):
        return replace(base, problem=found)
    devices, env = found
    if devices is None:
        backend = _backend_from_libraries(where.library_names(folder)) or "unknown"
        devices = ()
    else:
        backend = backend_from_devices(devices)
    software = [d for d in devices if d.is_software]
    note = None
    if software:
        names = ", ".join(f"{d.name} {d.description}" for d in software)
        note = f"software renderer ({names}): runs on the CPU, slow"

    return BuildInfo(
        name=name, folder=folder, bench=bench,
        completion=_find_completion(where, folder, env, timeout),
        perplexity=_tool(where, folder, "llama-perplexity"),
        server=_tool(where, folder, "llama-server"),
        rpc_server=_tool(where, folder, "rpc-server") or _tool(where, folder, "ggml-rpc-server"),
        backend=backend, devices=devices, build_number=build_number, commit=commit,
        version_text=version_text, flags=flags, env=env, note=note, split_modes=split_modes,
    )


def _probe_devices(where: ProbeHost, bench: Path, flags: frozenset[str],
                   timeout: float) -> tuple[tuple[Device, ...] | None, dict[str, str]] | str:
    """(devices or None for a build too old to list them, the environment that shows them),
    or the problem."""
    if "--list-devices" not in flags:
        return None, {}
    devices_run = where.run([str(bench), "--list-devices"], {}, timeout)
    if devices_run.problem:
        return devices_run.problem
    devices = parse_devices(devices_run.stdout)
    if devices is None:
        return "--list-devices printed no device list: " + _last_line(devices_run.stderr,
                                                                       devices_run.stdout)
    if not devices and "GGML_VK_VISIBLE_DEVICES" not in where.environ:
        # ggml hides CPU-type Vulkan devices (lavapipe) unless asked for by index.
        retry_env = {"GGML_VK_VISIBLE_DEVICES": "0"}
        retry = where.run([str(bench), "--list-devices"], retry_env, timeout)
        if retry.problem is None:
            shown = parse_devices(retry.stdout) or ()
            if shown:
                return shown, retry_env
    return devices, {}


def _from_record(record: Mapping[str, Any]) -> BuildInfo | None:
    try:
        return codec.from_builtins(record, BuildInfo)
    except codec.CodecError:
        return None  # written by another version: probe again


# --- discovery -----------------------------------------------------------------------------

def parse_build_arg(text: str) -> tuple[str, Path]:
    """``rocm=~/llama.cpp/build-rocm`` -> ("rocm", Path). A bare path is named after its
    folder. Raises ValueError with a one-line message for an empty name or path."""
    name, sep, raw_path = text.partition("=")
    if not sep:
        name, raw_path = "", text
    name, raw_path = name.strip(), raw_path.strip()
    if sep and not name:
        raise ValueError(f"build {text!r} has an empty name (use NAME=PATH)")
    if not raw_path:
        raise ValueError(f"build {text!r} has no path (use NAME=PATH)")
    path = Path(raw_path).expanduser()
    if not name:
        folder = path.parent if path.name.startswith(BENCH) else path
        name = _default_name(folder)
    return name, path


def candidate_folders(home: Path | None = None, search_path: str | None = None) -> list[Path]:
    """Folders that may hold a build: PATH entries with llama-bench, ~/llama.cpp/build*,
    /opt/llama.cpp*."""
    home = home or Path.home()
    found: list[Path] = []
    path_value = os.environ.get("PATH", "") if search_path is None else search_path
    for entry in path_value.split(os.pathsep):
        if entry and (Path(entry) / BENCH).is_file():
            found.append(Path(entry))
    patterns = [
        (home / "llama.cpp", ("build*/bin", "build*")),
        (Path("/opt"), ("llama.cpp*/build*/bin", "llama.cpp*/build*", "llama.cpp*/bin",
                        "llama.cpp*")),
    ]
    for root, globs in patterns:
        if not root.is_dir():
            continue
        for pattern in globs:
            for folder in sorted(root.glob(pattern)):
                if (folder / BENCH).is_file():
                    found.append(folder)
    return found


def discover_builds(extra: Mapping[str, Path] | None = None, *,
                    search_defaults: bool = True, timeout: float = PROBE_TIMEOUT_S,
                    use_cache: bool = True, cache_path: Path | None = None) -> list[BuildInfo]:
    """Every build found plus the ones named in ``extra`` (always listed, with a problem
    when broken), probed in parallel. Each llama-bench appears once."""
    wanted: list[tuple[str | None, Path]] = [(n, Path(p).expanduser())
                                             for n, p in (extra or {}).items()]
    if search_defaults:
        wanted += [(None, folder) for folder in candidate_folders()]
    seen: set[Path] = set()
    unique: list[tuple[str | None, Path]] = []
    for name, path in wanted:
        bench = find_bench(path) if path.exists() else None
        identity = bench.resolve() if bench is not None else path.resolve()
        if identity in seen:
            continue
        seen.add(identity)
        unique.append((name, path))

    with ThreadPoolExecutor(max_workers=4) as pool:
        builds = list(pool.map(
            lambda item: probe_build(item[1], item[0], timeout=timeout, use_cache=use_cache,
                                     cache_path=cache_path),
            unique))
    return _unique_names(builds)


def _unique_names(builds: list[BuildInfo]) -> list[BuildInfo]:
    counts: dict[str, int] = {}
    result = []
    for build in builds:
        counts[build.name] = counts.get(build.name, 0) + 1
        if counts[build.name] > 1:
            build = replace(build, name=f"{build.name}-{counts[build.name]}")
        result.append(build)
    return result


def which_bench() -> Path | None:
    found = shutil.which(BENCH)
    return Path(found) if found else None
