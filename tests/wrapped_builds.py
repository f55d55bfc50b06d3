"""Build folders that wrap a real llama.cpp build's tools to misbehave on purpose.

Each tool in the folder is a small Python program that runs the real tool of the wrapped
build (an argument list, no shell) with changes: arguments added (a build slowed
on purpose, for llama-bench only: an argument like ``-ub`` also moves the arithmetic's last
bits, which the correctness check would rightly see), the model swapped for another (a build serving a different model under the
same name), or, for llama-server, the server killed after N answered requests with an
error line in llama.cpp's log format, as a build that crashes under load would.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

TOOLS = ("llama-bench", "llama-server", "llama-perplexity", "llama-completion", "llama-cli")

_PROGRAM = r'''#!{python}
import json, os, signal, subprocess, sys
conf = json.loads({conf!r})
real = os.path.join(conf["real"], os.path.basename(sys.argv[0]))
args = sys.argv[1:]
if conf["model"] and "-m" in args:
    args[args.index("-m") + 1] = conf["model"]
informational = any(a in args for a in ("--list-devices", "--version", "--help", "-h"))
if not informational and os.path.basename(real) in conf["extra_tools"]:
    runs = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), ".runs")
    with open(runs, "a+") as counter:  # each run of an extra tool appends one line
        counter.write("x\n")
        counter.seek(0)
        run = len(counter.readlines())
    if conf["extra_runs"] is None or run <= conf["extra_runs"]:
        args += conf["extra"]
kill_after = conf["kill_after"] if os.path.basename(real) == "llama-server" else None
if not kill_after:
    os.execv(real, [real] + args)
child = subprocess.Popen([real] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
answered = 0
for raw in child.stdout:
    sys.stdout.buffer.write(raw)
    sys.stdout.flush()
    if conf["marker"].encode() in raw:
        answered += 1
        if answered >= kill_after:
            child.kill()
            child.wait()
            sys.stdout.write("0.00.000.000 E ggml_abort: device fault: lost the device after "
                             f"{{answered}} requests\n")
            sys.stdout.flush()
            signal.signal(signal.SIGABRT, signal.SIG_DFL)
            os.abort()
sys.exit(child.wait())
'''


def wrap(folder: Path, real: Path, *, extra: Sequence[str] = (), extra_tools: Sequence[str] = ("llama-bench",),
         extra_runs: int | None = None, model: Path | None = None, kill_after: int | None = None,
         marker: str = "release: id") -> Path:
    """A build folder at ``folder`` whose tools run ``real``'s with the changes asked for
    (``extra`` arguments for the ``extra_tools`` only, for their first ``extra_runs`` runs
    when given: a build slow for a while)."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = json.dumps({"real": str(real), "extra": list(extra), "extra_tools": list(extra_tools),
                       "extra_runs": extra_runs, "kill_after": kill_after,
                       "model": str(model) if model else None, "marker": marker})
    for tool in TOOLS:
        if not (real / tool).exists():
            continue
        path = folder / tool
        path.write_text(_PROGRAM.format(python=sys.executable, conf=conf), encoding="utf-8")
        path.chmod(0o755)
    for entry in real.iterdir():  # shared libraries and anything else the probe looks at
        if entry.name not in TOOLS and not (folder / entry.name).exists():
            os.symlink(entry, folder / entry.name)
    return folder


def different_model(gemma: Path, target: Path) -> Path:
    """Gemma with its final norm's weights changed: the same vocabulary and size, other answers."""
    import gguf
    import numpy as np

    data = bytearray(gemma.read_bytes())
    reader = gguf.GGUFReader(gemma, "r")
    tensor = next(t for t in reader.tensors if t.name == "output_norm.weight")
    start = int(tensor.data_offset)
    values = np.frombuffer(bytes(data[start:start + tensor.n_bytes]), dtype=np.float32).copy()
    values[:] = values[::-1] * -1.0  # the norm's scale reversed and negated
    data[start:start + tensor.n_bytes] = values.tobytes()
    target.write_bytes(bytes(data))
    return target
