"""Tooling, apart from what runs when llamaduel runs: building the llama.cpp toolchain the
tests and the demo use (``toolchain.py``, standard library only, so
``scripts/build_llamacpp.py`` runs before anything is installed) and writing GGUF models
with random weights (``synth.py``: ``python -m backends.tooling.synth``).
"""
