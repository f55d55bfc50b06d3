"""Shared fixtures: the real llama.cpp toolchain and real generated GGUF models.

Tests that need the toolchain fail (never skip) when it is missing: the README's test
command builds it first with scripts/build_llamacpp.py.
"""

from __future__ import annotations

import os
from pathlib import Path

# Import before any test runs: CPython 3.11.7's parser can fail ("AST constructor recursion
# depth mismatch") when pytest rewrites hypothesis lazily at the end of a session.
import hypothesis  # noqa: F401
import pytest

from backends.tooling import toolchain

REPO = Path(__file__).resolve().parent.parent
REALDATA = REPO.parent / "shared" / "realdata"


def _toolchain_dir(backend: str) -> Path:
    folder = toolchain.bin_dirs()[backend]
    if not toolchain.is_built(backend):
        pytest.fail(
            f"the llama.cpp {backend} toolchain is missing at {folder}: "
            "run `python3 scripts/build_llamacpp.py` first (the README's test command does)"
        )
    return folder


@pytest.fixture(scope="session")
def cpu_bin() -> Path:
    """Folder with the real CPU llama-bench, llama-completion and llama-perplexity."""
    return _toolchain_dir("cpu")


@pytest.fixture(scope="session")
def vulkan_bin() -> Path:
    """Folder with the real Vulkan build; runs on lavapipe with GGML_VK_VISIBLE_DEVICES=0."""
    return _toolchain_dir("vulkan")


@pytest.fixture(scope="session")
def combined_bin() -> Path:
    """One build with GGML_BACKEND_DL: CPU and Vulkan as loadable backends, and RPC."""
    return _toolchain_dir("combined")


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Published llama-bench outputs, read in place; required under CI."""
    if not REALDATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{REALDATA} is missing under CI")
        pytest.skip(f"{REALDATA} is not beside this checkout (a user's clone)")
    return REALDATA


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A real 2-layer llama GGUF (F32, SentencePiece vocab) that llama.cpp runs in ms."""
    from backends.tooling.synth import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def tiny_moe(tmp_path_factory) -> Path:
    """A real 2-layer qwen3moe GGUF with 8 experts, 2 used per token."""
    from backends.tooling.synth import write_tiny_moe

    return write_tiny_moe(tmp_path_factory.mktemp("models") / "tiny-moe.gguf")
