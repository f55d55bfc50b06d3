"""Builds and models on another machine, learnt over ssh without copying either.

``probe_remote_build`` asks the host's ``llama-bench`` the same questions a local probe
asks (``--version``, ``--help``, ``--list-devices``) and lists its folder for the other
tools; the answers are read by the same parsers (``backends.builds.probe_tools``).
``read_remote_model`` reads a GGUF model's metadata with only its header travelling: the
first bytes are fetched, and more while the header parser asks for more; the size comes
from the host's ``stat``. Paths are paths on that host, never checked here.

Neither raises: a host or file that cannot be used comes back with a one-line ``problem``.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from backends.builds import BENCH, BuildInfo, ProbeRun, _default_name, probe_outcome, probe_tools
from backends.models import (
    SPLIT_NAME,
    GGUFHeader,
    HeaderError,
    HeaderTruncated,
    ModelInfo,
    model_from_headers,
    parse_header_bytes,
)
from backends.remote.ssh import SshError, SshHost, SshResult, check_destination, remote_path, shell_words, ssh_host

PROBE_TIMEOUT_S = 30.0
FIRST_FETCH_BYTES = 1 << 20
MAX_HEADER_BYTES = 256 << 20
_MARK = "@@llamaduel"

# Finds llama-bench for a folder or a tool's path; prints its folder (resolved) and that
# folder's files, an executable one marked x.
_LOCATE = f"""p=$0; b=
if [ -d "$p" ]; then
  for c in "$p/{BENCH}" "$p/bin/{BENCH}"; do if [ -e "$c" ]; then b=$c; break; fi; done
elif [ -e "$p" ]; then b=$p
else echo "{_MARK} missing"; exit 0
fi
if [ -z "$b" ]; then echo "{_MARK} nobench"; exit 0; fi
d=$(cd "$(dirname "$b")" && pwd -P) || exit 3
echo "{_MARK} folder $d"
echo "{_MARK} bench $(basename "$b")"
for f in "$d"/*; do
  if [ -f "$f" ] && [ -x "$f" ]; then echo "x ${{f##*/}}"; else echo "- ${{f##*/}}"; fi
done
"""
_RUN = ('if command -v timeout >/dev/null 2>&1; then timeout -k 5 "$0" "$@"; else "$@"; fi')


def split_remote(value: str) -> tuple[str | None, str]:
    """``gpu2:~/llama.cpp/build`` -> ("gpu2", "~/llama.cpp/build"); a local path -> (None, value).

    The rule is scp's: a ':' before any '/' names a host. A local path that exists wins, so
    a local folder with a ':' in its name stays local. ``[::1]:path`` names an IPv6 host.
    """
    if not value or Path(value).expanduser().exists():
        return None, value
    if value.startswith("[") and "]:" in value:
        host, _, path = value[1:].partition("]:")
    else:
        host, sep, path = value.partition(":")
        if not sep or "/" in host:
            return None, value
    if not host or not path or ("@" in host and not host.split("@", 1)[1]):
        return None, value
    return host, path


def parse_build_target(text: str, hosts: Mapping[str, str] | None = None) -> tuple[str, str | None, str]:
    """``--build`` with a host: ``rocm=gpu2:~/llama.cpp/build`` -> ("rocm", "gpu2",
    "~/llama.cpp/build"); a local build -> (name, None, the path, ``~`` expanded). ``hosts``
    (from ``--host NAME=DEST``) puts a named build on a host whatever its path looks like.
    ValueError (one line) for an empty name, path or destination."""
    name, sep, value = text.partition("=")
    if not sep:
        name, value = "", text
    name, value = name.strip(), value.strip()
    if sep and not name:
        raise ValueError(f"build {text!r} has an empty name (use NAME=PATH or NAME=HOST:PATH)")
    host: str | None
    if name and hosts and name in hosts:
        host, path = check_destination(hosts[name]), value
    else:
        host, path = split_remote(value)
    if not path:
        raise ValueError(f"build {text!r} has no path (use NAME=PATH or NAME=HOST:PATH)")
    if host is not None:
        check_destination(host)
    else:
        path = str(Path(path).expanduser())
    if not name:
        folder = PurePosixPath(path)
        name = _default_name(Path(folder.parent if folder.name.startswith(BENCH) else folder))
    return name, host, path


class RemoteProbeHost:
    """A ``backends.builds.ProbeHost`` on another machine: commands over ssh, files from
    one listing of the build folder."""

    environ: Mapping[str, str] = {}

    def __init__(self, host: SshHost, folder: PurePosixPath, files: Mapping[str, bool]) -> None:
        self.host, self.folder, self.files = host, folder, dict(files)

    def run(self, argv: list[str], extra_env: Mapping[str, str], timeout: float) -> ProbeRun:
        what = " ".join([PurePosixPath(argv[0]).name, *argv[1:]])
        words = [f"{int(timeout)}", "env", *(f"{k}={v}" for k, v in extra_env.items()), *argv]
        result = self.host.run_sync(f"exec sh -c {shlex.quote(_RUN)} {shell_words(words)}",
                                    timeout=timeout + 10)
        return _outcome(self.host, what, result)

    def is_tool(self, path: Path) -> bool:
        return PurePosixPath(path).parent == self.folder and self.files.get(path.name, False)

    def library_names(self, folder: Path) -> list[str]:
        return sorted(n for n in self.files if n.startswith("libggml-"))


def _outcome(host: SshHost, what: str, result: SshResult) -> ProbeRun:
    out = result.text
    code, err = result.returncode, result.stderr
    if code is None:
        return ProbeRun(out, err, None, f"{what} on {host.destination} did not answer (killed)")
    if code == 255:
        return ProbeRun(out, err, code, host.failure(result))
    if code == 124:
        return ProbeRun(out, err, code, f"{what} on {host.destination} did not answer in time (killed)")
    if code == 127:
        return ProbeRun(out, err, code, f"{what}: not found on {host.destination}")
    if code == 126:
        last = (err.strip().splitlines() or ["permission denied"])[-1][:160]
        return ProbeRun(out, err, code, f"{what} cannot run on {host.destination}: {last}")
    if 128 < code < 192:
        code = -(code - 128)
    return probe_outcome(what, out, err, code)


def _host(host: SshHost | str) -> SshHost:
    return host if isinstance(host, SshHost) else ssh_host(host)


def probe_remote_build(host: SshHost | str, path: str, name: str | None = None, *,
                       timeout: float = PROBE_TIMEOUT_S) -> BuildInfo:
    """Probe the build at ``path`` on ``host`` (a folder or one of its tools). Never raises."""
    ssh = _host(host)
    label = name or _default_name(Path(path))
    base = BuildInfo(name=label, folder=Path(path), host=ssh.destination)
    try:
        machine = ssh.machine or ssh.connect()
        result = ssh.run_sync(f"exec sh -c {shlex.quote(_LOCATE)} {remote_path(path)}", timeout=timeout)
    except SshError as error:
        return dataclasses.replace(base, problem=str(error))
    except OSError as error:
        return dataclasses.replace(base, problem=f"ssh cannot start: {error.strerror or error}")
    base = dataclasses.replace(base, machine=machine)
    if result.returncode != 0:
        return dataclasses.replace(base, problem=ssh.failure(result))
    lines = result.text.splitlines()
    if f"{_MARK} missing" in lines:
        return dataclasses.replace(base, problem=f"folder not found on {ssh.destination}: {path}")
    if f"{_MARK} nobench" in lines:
        return dataclasses.replace(base, problem=f"no {BENCH} in {path} on {ssh.destination}")
    fields = dict(line.split(" ", 2)[1:] for line in lines if line.startswith(_MARK + " ")
                  and line.count(" ") >= 2)
    folder = PurePosixPath(fields.get("folder", path))
    files = {line[2:]: line[0] == "x" for line in lines if line[:2] in ("x ", "- ")}
    bench = Path(folder / fields.get("bench", BENCH))
    base = dataclasses.replace(base, name=name or _default_name(Path(folder)), folder=Path(folder))
    if not files.get(bench.name, False):
        return dataclasses.replace(base, bench=bench, problem=f"{bench.name} on {ssh.destination} "
                                   f"is not executable (chmod +x {bench})")
    info = probe_tools(base.name, Path(folder), bench, timeout, RemoteProbeHost(ssh, folder, files))
    return dataclasses.replace(info, host=ssh.destination, machine=machine)


# --- models ----------------------------------------------------------------------------------

_STAT = ('for p in "$@"; do if [ -f "$p" ]; then '
         's=$(stat -L -c %s "$p" 2>/dev/null || wc -c < "$p"); '
         'a=$(cd "$(dirname "$p")" && pwd -P)/$(basename "$p"); echo "size $s $a"; '
         'elif [ -e "$p" ]; then echo "special"; else echo "missing"; fi; done')
_FETCH = 'tail -c +"$1" "$0" | head -c "$2"'


def _parts(path: PurePosixPath) -> list[PurePosixPath]:
    match = SPLIT_NAME.match(path.name)
    if not match:
        return [path]
    count, base = int(match["count"]), match["base"]
    return [path.with_name(f"{base}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def _sizes(ssh: SshHost, parts: list[PurePosixPath]) -> list[str]:
    words = " ".join(remote_path(str(p)) for p in parts)
    result = ssh.run_sync(f"exec sh -c {shlex.quote(_STAT)} sh {words}", timeout=30)
    if result.returncode != 0:
        raise SshError(ssh.failure(result))
    return result.text.split("\n")[:len(parts)]


def fetch_header(ssh: SshHost, path: PurePosixPath, size: int) -> GGUFHeader:
    """The GGUF header of a file on the host, fetching more bytes while the parser needs
    them (each fetch asks for as much as was read so far). HeaderError, SshError."""
    data = b""
    want = min(FIRST_FETCH_BYTES, size)
    while True:
        command = f"exec sh -c {shlex.quote(_FETCH)} {remote_path(str(path))} {len(data) + 1} {want}"
        result = ssh.run_sync(command, timeout=120)
        if result.returncode != 0:
            raise SshError(ssh.failure(result))
        if not result.stdout:
            raise HeaderError(f"the file ended at byte {len(data)} while reading it")
        data += result.stdout
        try:
            return parse_header_bytes(data, size)
        except HeaderTruncated:
            if len(data) >= MAX_HEADER_BYTES:
                raise HeaderError(f"the header is larger than {MAX_HEADER_BYTES >> 20} MiB") from None
            want = min(len(data), size - len(data), MAX_HEADER_BYTES - len(data))


def read_remote_model(host: SshHost | str, path: str) -> ModelInfo:
    """What the GGUF model at ``path`` on ``host`` is. Never raises."""
    ssh = _host(host)
    first = PurePosixPath(path)
    parts = _parts(first)
    match = SPLIT_NAME.match(first.name)
    name = match["base"] if match else first.stem
    base = ModelInfo(path=Path(path), files=(Path(path),), name=name)
    where = f"on {ssh.destination}"
    try:
        states = _sizes(ssh, parts)
        missing = [str(i) for i, state in enumerate(states, 1) if state == "missing"]
        if len(parts) == 1 and missing:
            return dataclasses.replace(base, problem=f"no such file {where}")
        if "special" in states:
            return dataclasses.replace(base, problem=f"is not a regular file {where}")
        # The host's absolute paths ("~/models" is the host's home), for llama-bench there.
        found = [(PurePosixPath(s.split(" ", 2)[2]), int(s.split()[1])) for s in states
                 if s.startswith("size ") and s.count(" ") >= 2]
        base = ModelInfo(path=Path(found[0][0]) if found else Path(path),
                         files=tuple(Path(p) for p, _ in found), name=name,
                         size_bytes=sum(size for _, size in found))
        problem = (f"split model is missing part{'s' if len(missing) > 1 else ''} "
                   f"{', '.join(missing)} of {len(parts)} {where}") if missing else None
        headers = [(Path(p), fetch_header(ssh, p, size)) for p, size in found]
    except (SshError, HeaderError) as error:
        return dataclasses.replace(base, problem=str(error))
    except (OSError, ValueError) as error:
        return dataclasses.replace(base, problem=f"cannot read it {where}: {error}")
    return model_from_headers(base, headers, problem)
