"""The reference's token probabilities, kept between checks.

A nightly gate checks tonight's build against the same reference every night: the same
binaries reading the same text with the same model give the same probabilities, so they
are computed once. An entry's key is a hash of what makes them: the reference's
llama-perplexity and every library beside it (a rebuilt reference is a new key), the model
file (its path, size and modification time), the text, the context, the chunks, the extra
arguments and the environment the tool runs with. The newest ``KEEP`` entries stay.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from backends.journal.check import CorrectnessResult

KEEP = 4  # entries kept: a gate's reference or two, each maybe tens of MB for a large vocabulary
LOGITS = "reference.kld"
RESULT = "result.json"


@dataclass(frozen=True)
class CachedReference:
    logits: Path
    result: CorrectnessResult
    context: int  # the context the reference read at (it may have shrunk to fit the text)


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.digest()


def reference_key(tool: Path, model: Path, text: Path, context: int, chunks: int | None,
                  extra: Sequence[str], env: Mapping[str, str]) -> str:
    """What the reference's probabilities depend on, as one hex string."""
    digest = hashlib.sha256()
    libraries = sorted({p.resolve() for p in tool.parent.iterdir() if ".so" in p.name
                        or p.suffix in (".dll", ".dylib")})
    for path in (tool.resolve(), *libraries):
        digest.update(path.name.encode() + b"\0" + _file_digest(path))
    stat = model.stat()
    digest.update(json.dumps([str(model.resolve()), stat.st_size, stat.st_mtime_ns, context, chunks,
                              list(extra), sorted(env.items())]).encode())
    digest.update(_file_digest(text))
    return digest.hexdigest()[:32]


def load(root: Path, key: str) -> CachedReference | None:
    folder = root / key
    try:
        data = json.loads((folder / RESULT).read_text(encoding="utf-8"))
        result = CorrectnessResult.from_json(data["result"])
        context = int(data["context"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    logits = folder / LOGITS
    if not logits.is_file():
        return None
    os.utime(folder)  # the newest used stays longest
    return CachedReference(logits, result, context)


def store(root: Path, key: str, logits: Path, result: CorrectnessResult, context: int) -> None:
    """Keep one entry (written aside, then moved in whole); a cache that cannot be written
    is no error: the next check computes the probabilities again."""
    scratch: Path | None = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".entry-", dir=root))
        shutil.copyfile(logits, scratch / LOGITS)
        (scratch / RESULT).write_text(json.dumps({"result": result.to_json(), "context": context}),
                                      encoding="utf-8")
        os.replace(scratch, root / key)  # refused when another check kept it first: fine
    except OSError:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    _evict(root)


def _evict(root: Path) -> None:
    entries = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
