"""The model file a check reads: its path, trained context and what is wrong with it."""
from __future__ import annotations

import os
from pathlib import Path

from backends.correctness.model import DEFAULT_CONTEXT, MIN_CONTEXT, CheckInputError
from backends.correctness.parse import NO_REASON
from backends.models import ModelInfo

# The model a check reads: as found (its path inside) or a path.
CheckModel = ModelInfo | str | os.PathLike[str]


def _model_path(model: CheckModel) -> Path:
    path = model.path if isinstance(model, ModelInfo) else Path(model)
    if not path.is_file():
        raise CheckInputError(f"model file not found: {path}")
    return path


def model_context_length(path: Path) -> int | None:
    """The context the model was trained on, from its GGUF metadata; None if unreadable."""
    try:
        import gguf

        reader = gguf.GGUFReader(path, "r")
        for name, field_ in reader.fields.items():
            if name.endswith(".context_length") and field_.data:
                return int(field_.parts[field_.data[0]][0])
    except Exception:  # a truncated or odd file: the tool will say what is wrong
        return None
    return None


def model_problem(path: Path) -> str | None:
    """What is wrong with a model file that llama.cpp would not load, if gguf can tell."""
    try:
        import gguf

        gguf.GGUFReader(path, "r")
    except Exception as error:  # any reader error means a damaged file
        return f"the model file looks damaged or incomplete ({type(error).__name__}: {error})"
    return None


def _explain(failure: str, model: Path) -> str:
    """Fill in a reason llama.cpp's log lost, from the model file when it is to blame."""
    if failure.endswith(NO_REASON):
        problem = model_problem(model)
        if problem:
            return failure[: -len(NO_REASON)] + problem
    return failure


def default_context(model_path: Path) -> int:
    trained = model_context_length(model_path)
    if trained and trained >= MIN_CONTEXT:
        return min(DEFAULT_CONTEXT, trained)
    return DEFAULT_CONTEXT


def _context_for(tokens: int) -> int | None:
    """The largest power-of-two context that still leaves two chunks of ``tokens``."""
    context = 1 << max(0, (tokens // 2).bit_length() - 1)
    return context if context >= MIN_CONTEXT else None
