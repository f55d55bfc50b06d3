"""Failed runs are data: the error line of a log, and what a file name says about its run.

A log that ended in a GPU hang, an abort, a segfault, running out of memory, a crashed RPC
server or a container that never started becomes a failure of the build and the test it was
for. The reason is the most telling line of the log (``vk::Queue::submit: ErrorDeviceLost``),
with the exit status a wrapper printed (``failed (exit 134)``) in words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# (pattern, what it means), most specific first. The matching line itself is kept as the reason.
_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.IGNORECASE), w) for p, w in (
    (r"HW Exception|GPU Hang|HSA_STATUS_ERROR|hardware exception", "GPU hang"),
    (r"ErrorDeviceLost|device lost", "device lost"),
    (r"Remote RPC server crashed", "RPC server crashed"),
    (r"Failed to connect to \S+:\d+", "RPC server unreachable"),
    (r"ErrorOutOf(Device|Host)Memory|out of memory|cudaMalloc failed|hipMalloc failed|OOM", "out of memory"),
    (r"failed to allocate|allocation of size \d+ failed", "failed to allocate"),
    (r"failed to start container|Error: .*container", "container failed to start"),
    (r"failed to load model", "model failed to load"),
    (r"failed to create context", "context failed"),
    (r"Segmentation fault|SIGSEGV", "segfault"),
    (r"GGML_ASSERT|Assertion .* failed", "assertion failed"),
    (r"\b(?:ROCm|CUDA|HIP|MUSA|SYCL|Vulkan) error\b", "GPU error"),
    (r"what\(\):", "aborted"),
    (r"terminate called|Aborted|core dumped|SIGABRT", "aborted"),
    (r"\bmain: error:|^error:|\berror: ", "error"),
))
# Meanings that may appear in a run that went on (a warning, a retried allocation).
_SOFT = ("error", "failed to allocate")
# A debugger attached by ggml's abort handler, or its frames: the process was dying.
_DEBUGGER = re.compile(r"^(?:\[Thread debugging using libthread_db|\[New LWP \d+\]|Using host libthread_db|"
                       r"#\d+\s+(?:0x[0-9a-f]+\s+in\s+)?[\w:<>~.]+\s*\(|\S*__GI___wait4|"
                       r"ptrace: Operation not permitted|No stack\.)")
_WRAPPER = re.compile(r"failed \(exit (\d+)\)|exit(?:ed with)?(?: code| status)? (\d+)", re.IGNORECASE)
_SIGNALS = {134: "abort", 137: "killed (out of memory or stopped)", 139: "segfault", 143: "terminated"}
_BACKTRACE = re.compile(r"^\s*(?:\S+\(\S*\)\s*\[0x[0-9a-f]+\]|\S+\(\+0x[0-9a-f]+\)|#\d+\s+0x)")


@dataclass(frozen=True)
class LogFailure:
    """``hard``: the process died (a crash line, a backtrace, a non-zero exit), not just a
    warning with "error" in it."""

    reason: str
    exit_code: int | None = None
    hard: bool = True


def _exit_words(code: int) -> str:
    meaning = _SIGNALS.get(code)
    return f"exit {code}" + (f", {meaning}" if meaning else "")


def failure_in(lines: list[str]) -> LogFailure | None:
    """The failure a log records, or None when it records none."""
    best: tuple[int, str] | None = None
    code: int | None = None
    traced = False
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if _BACKTRACE.match(text) or _DEBUGGER.match(text):
            traced = True
            continue
        wrapper = _WRAPPER.search(text)
        if wrapper and "failed" in text.lower():
            code = int(wrapper.group(1) or wrapper.group(2))
            continue
        for rank, (pattern, _) in enumerate(_ERRORS):
            if pattern.search(text):
                if best is None or rank < best[0]:
                    best = (rank, _clean(text))
                break
    if best is None and code is None:
        return LogFailure(reason="crashed: a backtrace and no error line") if traced else None
    parts = []
    if code is not None:
        parts.append(_exit_words(code))
    if best is not None:
        meaning = _ERRORS[best[0]][1]
        if meaning in ("GPU hang", "device lost", "segfault") and meaning.split()[-1] not in best[1].lower():
            parts.append(meaning)
        parts.append(best[1])
    return LogFailure(reason=": ".join(parts), exit_code=code, hard=traced or (
        best is not None and _ERRORS[best[0]][1] not in _SOFT) or bool(code))


def is_backtrace(line: str) -> bool:
    return bool(_BACKTRACE.match(line.strip()))


def _clean(text: str) -> str:
    text = re.sub(r"^(?:\S+\.(?:cpp|cu|c|h):\d+:\s*)", "", text)  # source location prefix
    text = re.sub(r"^\s*(?:what\(\):|✖\s*!?)\s*", "", text)
    text = re.sub(r"^:\d+:\S+\s*:\d+:\s*\d+ us:\s*", "", text)  # ROCr's ":0:rocdevice.cpp :3580: 1432 us:"
    text = re.sub(r"\s{2,}", " ", text).strip("\"'`")
    return text[:240]


# ---------------------------------------------------------------------------------------
# What a file name says

_BACKEND_WORDS = (("rocwmma", "ROCm"), ("rocm", "ROCm"), ("hip", "ROCm"), ("therock", "ROCm"),
                  ("vulkan", "Vulkan"), ("radv", "Vulkan"), ("amdvlk", "Vulkan"), ("cuda", "CUDA"),
                  ("metal", "Metal"), ("sycl", "SYCL"), ("cpu", "CPU"))
# Tokens that describe the test or repetitions rather than the build.
DESCRIPTOR = re.compile(r"^(?:longctx\d+|ctx\d+|d\d+|pp\d+|tg\d+|r\d+|prefill|generation|gen|tg|pp|"
                        r"curve|stderr|log|out|err|results?|bench|run|fa\d|ub\d+|b\d{3,}|\d{5,})$",
                        re.IGNORECASE)


def tokens(stem: str) -> list[str]:
    """A file stem cut into words: ``__`` separates fields where a name uses it."""
    fields = stem.split("__") if "__" in stem else [stem]
    out: list[str] = []
    for f in fields:
        out.extend(t for t in re.split(r"[._\-\s]+", f) if t)
    return out


def backend_hint(path: str) -> str | None:
    words = [t.lower() for t in tokens(Path(path).stem)]
    for word, backend in _BACKEND_WORDS:
        if any(w.startswith(word) for w in words):
            return backend
    return None


def build_hint(path: str) -> int | None:
    for t in tokens(Path(path).stem):
        m = re.fullmatch(r"b(\d{3,})", t)
        if m:
            return int(m.group(1))
    return None


def test_hints(path: str) -> tuple[str | None, int | None, int | None]:
    """(phase, depth, repetitions) the name states: ``prefill``/``tg128``, ``longctx32768``, ``r5``."""
    phase = depth = reps = None
    for t in (w.lower() for w in tokens(Path(path).stem)):
        if t in ("prefill", "pp") or re.fullmatch(r"pp\d+", t):
            phase = "pp"
        elif t in ("tg", "generation", "gen") or re.fullmatch(r"tg\d+", t):
            phase = "tg"
        elif m := re.fullmatch(r"(?:longctx|ctx|d)(\d+)", t):
            depth = int(m.group(1))
        elif m := re.fullmatch(r"r(\d+)", t):
            reps = int(m.group(1))
    return phase, depth, reps
