"""Reading models and finding them in folders (split files are one model)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from gguf import GGMLQuantizationType, LlamaFileType

from backends.models.header import ArrayInfo, GGUFHeader, HeaderError, TensorEntry, read_header
from backends.models.info import EXPERT_TENSOR, KNOWN_ARCHITECTURES, SPLIT_NAME, ModelInfo, ModelSearchError

# --- models --------------------------------------------------------------------------------

def split_parts(path: Path) -> tuple[list[Path], str | None]:
    """All parts of the split model ``path`` belongs to, and a problem if some are missing.
    A file that is not split is its own single part."""
    match = SPLIT_NAME.match(path.name)
    if not match:
        return [path], None
    count = int(match["count"])
    base = match["base"]
    parts = [path.with_name(f"{base}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [str(i) for i, part in enumerate(parts, 1) if not part.is_file()]
    problem = None
    if missing:
        problem = (f"split model is missing part{'s' if len(missing) > 1 else ''} "
                   f"{', '.join(missing)} of {count}")
    return [p for p in parts if p.is_file()], problem


def _model_name(path: Path) -> str:
    match = SPLIT_NAME.match(path.name)
    return match["base"] if match else path.stem


def _first_int(value: object) -> int | None:
    """An integer hyperparameter; per-layer arrays give their largest value."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return int(max(value))
    return None


def _quant_name(metadata: Mapping[str, object], tensors: Iterable[TensorEntry]) -> str | None:
    file_type = metadata.get("general.file_type")
    if isinstance(file_type, int):
        try:
            name = LlamaFileType(file_type).name
        except ValueError:
            name = None
        if name and name != "GUESSED":
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    # No file type: the tensor type holding most of the weights.
    by_bytes: Counter[str] = Counter()
    for tensor in tensors:
        by_bytes[GGMLQuantizationType(tensor.type_id).name] += tensor.nbytes
    return by_bytes.most_common(1)[0][0] if by_bytes else None


def _not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a model without blocking (a FIFO, a device), or None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # read_header says what is wrong
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    return f"is {kind}, not a model file"


def _gguf_files(root: Path) -> list[Path]:
    """``.gguf`` files under ``root``, following folder links but never around a loop."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            info = folder.stat()
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue  # unreadable or a loop: skipped, the rest is searched
        if (info.st_dev, info.st_ino) in seen:
            continue
        seen.add((info.st_dev, info.st_ino))
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                pending.append(path)
            elif path.suffix.lower() == ".gguf":
                # Broken and looping links are kept: models the user expects to see, unreadable.
                found.append(path)
    return sorted(found)


def read_model(path: str | Path) -> ModelInfo:
    """What a GGUF model is. Never raises: bad files come back with ``problem`` set."""
    path = Path(path)
    parts, missing_problem = split_parts(path)
    first = parts[0] if parts else path
    name = _model_name(path)
    size = 0
    for part in parts:
        with contextlib.suppress(OSError):
            size += part.stat().st_size
    base = ModelInfo(path=first, files=tuple(parts), name=name, size_bytes=size)
    for part in parts:
        special = _not_a_regular_file(part)
        if special:
            return _with_problem(base, special)
    try:
        headers = [(part, read_header(part)) for part in parts]
    except HeaderError as error:
        return _with_problem(base, str(error))
    except PermissionError:
        return _with_problem(base, "cannot read the file (permission denied)")
    except IsADirectoryError:
        return _with_problem(base, "is a folder, not a file")
    except OSError as error:
        return _with_problem(base, f"cannot read the file ({error.strerror or error})")
    return model_from_headers(base, headers, missing_problem)


def model_from_headers(base: ModelInfo, headers: list[tuple[Path, GGUFHeader]],
                       missing_problem: str | None) -> ModelInfo:
    """What a model is, from the headers of its parts (``base``: its path, files, name and
    size; ``missing_problem``: parts that are missing)."""
    first, parts, name, size = base.path, base.files, base.name, base.size_bytes
    if not headers:
        return _with_problem(base, missing_problem or "no such file")

    metadata = dict(headers[0][1].metadata)
    tensors = [t for _, header in headers for t in header.tensors]
    arch = metadata.get("general.architecture")
    arch = arch if isinstance(arch, str) else None
    title = metadata.get("general.name")

    def arch_int(key: str) -> int | None:
        return _first_int(metadata.get(f"{arch}.{key}")) if arch else None

    layers = arch_int("block_count")
    head_count = arch_int("attention.head_count")
    head_count_kv = arch_int("attention.head_count_kv") or head_count
    embd = arch_int("embedding_length")
    key_length = arch_int("attention.key_length")
    if key_length is None and embd and head_count:
        key_length = embd // head_count
    value_length = arch_int("attention.value_length") or key_length
    vocab = arch_int("vocab_size")
    tokens = metadata.get("tokenizer.ggml.tokens")
    if vocab is None and isinstance(tokens, ArrayInfo):
        vocab = tokens.count

    problem = missing_problem or _split_problem(headers) or _content_problem(arch, tensors)
    return ModelInfo(
        path=first, files=tuple(parts),
        name=title if isinstance(title, str) and title.strip() else name,
        architecture=arch,
        parameters=sum(t.elements for t in tensors),
        size_bytes=size,
        quant=_quant_name(metadata, tensors),
        layers=layers,
        context_length=arch_int("context_length"),
        expert_count=arch_int("expert_count") or 0,
        experts_used=arch_int("expert_used_count") or 0,
        embedding_length=embd,
        head_count=head_count,
        head_count_kv=head_count_kv,
        problem=problem,
        key_length=key_length,
        value_length=value_length,
        vocab_size=vocab,
        tensor_bytes=sum(t.nbytes for t in tensors),
        expert_bytes_by_layer=_expert_bytes(tensors, layers),
    )


def _expert_bytes(tensors: Iterable[TensorEntry], layers: int | None) -> tuple[int, ...]:
    """Bytes of each layer's ``*_exps`` tensors (() for a dense model)."""
    expert_bytes: dict[int, int] = {}
    for tensor in tensors:
        match = EXPERT_TENSOR.match(tensor.name)
        if match:
            layer = int(match["layer"])
            expert_bytes[layer] = expert_bytes.get(layer, 0) + tensor.nbytes
    if not expert_bytes:
        return ()
    count = max([layers or 0, *(k + 1 for k in expert_bytes)])
    return tuple(expert_bytes.get(i, 0) for i in range(count))


def _content_problem(arch: str | None, tensors: list[TensorEntry]) -> str | None:
    if arch is None:
        return "no general.architecture in the metadata"
    if arch == "clip":
        return "a multimodal projector (mmproj), not a language model"
    if arch not in KNOWN_ARCHITECTURES:
        return f"unknown architecture {arch!r}"
    return None if tensors else "holds no tensors"


def _split_problem(headers: list[tuple[Path, GGUFHeader]]) -> str | None:
    if len(headers) < 2:
        return None
    declared = headers[0][1].metadata.get("split.count")
    if isinstance(declared, int) and declared != len(headers):
        return f"split metadata says {declared} parts, found {len(headers)}"
    return None


def _with_problem(model: ModelInfo, problem: str) -> ModelInfo:
    return ModelInfo(path=model.path, files=model.files, name=model.name,
                     size_bytes=model.size_bytes, problem=problem)


def find_models(dirs: Iterable[str | Path]) -> list[ModelInfo]:
    """Every GGUF model under ``dirs`` (searched recursively; a .gguf file may be named
    directly). Split parts come back as one model. Raises ModelSearchError (one line) for a
    missing folder."""
    seen: set[Path] = set()
    models: list[ModelInfo] = []
    for entry in dirs:
        root = Path(entry).expanduser()
        if root.is_file():
            candidates = [root]
        elif root.is_dir():
            candidates = _gguf_files(root)
        elif root.exists():
            raise ModelSearchError(f"not a folder or file: {root}")
        else:
            raise ModelSearchError(f"no such folder: {root}")
        for candidate in candidates:
            parts, _ = split_parts(candidate)
            # realpath, not resolve(): a link that loops must not raise.
            key = Path(os.path.realpath(parts[0] if parts else candidate))
            group = SPLIT_NAME.match(candidate.name)
            if group:
                key = Path(os.path.realpath(candidate.with_name(f"{group['base']}-of-{group['count']}")))
            if key in seen:
                continue
            seen.add(key)
            models.append(read_model(candidate))
    return models


