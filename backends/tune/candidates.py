"""Building one contender's grid: the values of each free setting, memory checks, the fit.

Memory: with the model's facts and the card's free VRAM, a candidate whose weights, KV
cache (at the sweep's deepest context, not the probe's), one ubatch of logits and (without
flash attention) one layer's attention scores cannot fit is set aside with the reason.
The estimate in ``backends.models.fit`` adds a margin for the compute buffer, so
``-ncmoe`` is searched from its estimate downwards (fewer experts on the CPU, faster while
it fits) and ``-ngl`` from its estimate upwards; a candidate past the real limit fails
when it runs, and only that candidate fails.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import product
from typing import Any

from backends.journal.tune import Candidate, SkippedCandidate, TuneSpec
from backends.models import ModelInfo, estimate_fit, kv_cache_bytes
from backends.sweep.spec import SweepSpec
from backends.tune.grid import (
    CHANGES_GENERATION,
    FIT_MARGIN_MIB,
    KV_CHOICES,
    PP_ONLY_NOTE,
    Grid,
    batch_for,
    free_vram,
    holds_whole_note,
    is_cpu_contender,
    ubatch_values,
)

GIB = 1 << 30
SEARCH_STEPS = (0, 1, 2, 4)  # from the fit estimate, towards more on the GPU


def _context(spec: SweepSpec) -> int:
    return max(spec.depths) + max((*spec.prompts, 0)) + max((*spec.gens, 0))


def _thread_values(spec: SweepSpec) -> list[int | None]:
    cores = os.cpu_count() or 1
    values = {c for c in (1, 2, 4, 8, 16, 32, 64) if c < cores} | {cores}
    return [spec.threads, *sorted(values - {spec.threads})]


def _split_values(free: Sequence[str], spec: SweepSpec, model: ModelInfo, vram: int | None,
                  notes: list[str]) -> tuple[list[int | None], list[int | None]]:
    """-ncmoe and -ngl values when they are free and the model does not fit."""
    ncmoe: list[int | None] = [spec.n_cpu_moe]
    ngl: list[int | None] = [spec.n_gpu_layers]
    if not ({"ncmoe", "ngl"} & set(free)):
        return ncmoe, ngl
    if vram is None:
        notes.append("-ncmoe/-ngl not searched: the free VRAM is unknown")
        return ncmoe, ngl
    fit = estimate_fit(model, vram, _context(spec), type_k=spec.type_k, type_v=spec.type_v)
    if fit.fits:
        notes.append(f"-ncmoe/-ngl not searched: the model {fit.reason}")
        return ncmoe, ngl
    layers = model.layers or 0
    if "ncmoe" in free and fit.suggested_ncmoe is not None:
        start = fit.suggested_ncmoe
        ncmoe = [*dict.fromkeys(max(0, start - s) for s in SEARCH_STEPS)]
        notes.append(f"-ncmoe from the fit estimate {start} downwards: {fit.reason}")
    elif "ngl" in free and layers:
        per_layer = max(1, model.tensor_bytes // layers)
        room = vram - kv_cache_bytes(model, _context(spec), spec.type_k, spec.type_v)
        start = max(0, min(layers, room // per_layer))
        ngl = [*dict.fromkeys(min(layers, start + s) for s in SEARCH_STEPS)]
        notes.append(f"-ngl from the fit estimate {start} upwards: {fit.reason}")
    return ncmoe, ngl


def _hard_need(model: ModelInfo, spec: SweepSpec, candidate: Candidate) -> int:
    """Bytes the card must hold for ``candidate`` without any margin: weights on the GPU,
    the KV cache at the sweep's deepest context and one ubatch of logits."""
    weights = model.tensor_bytes
    if candidate.n_cpu_moe:
        weights -= sum(model.expert_bytes_by_layer[:candidate.n_cpu_moe])
    if candidate.n_gpu_layers is not None and model.layers:
        weights = weights * min(candidate.n_gpu_layers, model.layers) // model.layers
    type_k = candidate.type_k or spec.type_k
    type_v = candidate.type_v or spec.type_v
    kv = kv_cache_bytes(model, _context(spec), type_k, type_v)
    ubatch = candidate.ubatch or spec.ubatch or 512
    logits = ubatch * (model.vocab_size or 0) * 4
    flash = spec.flash_attn if candidate.flash_attn is None else candidate.flash_attn
    # Without flash attention one layer's attention scores are a whole f32 matrix:
    # ubatch x context x heads (with it, or left to the build, they are tiled).
    scores = ubatch * _context(spec) * (model.head_count or 0) * 4 if flash is False else 0
    return weights + kv + logits + scores


def _problem(candidate: Candidate, spec: SweepSpec, model: ModelInfo, vram: int | None) -> str | None:
    type_v = candidate.type_v or spec.type_v
    flash = spec.flash_attn if candidate.flash_attn is None else candidate.flash_attn
    if type_v not in ("f16", "f32", "bf16") and flash is False:
        return f"a {type_v} V cache needs flash attention (-fa 1)"
    if vram is None or not model.tensor_bytes:
        return None
    need = _hard_need(model, spec, candidate)
    if need > vram:
        return (f"cannot fit: weights, KV cache at {_context(spec)} tokens and one ubatch's "
                f"logits and scores need {need / GIB:.1f} GiB, {vram / GIB:.1f} GiB free")
    return None


def make_grid(spec: SweepSpec, tune: TuneSpec, contender: Any, model: ModelInfo) -> Grid:
    """Every combination of the free settings' values for ``contender``; the first is the
    defaults (what the sweep would run untuned)."""
    free, notes = tune.free, []
    if not CHANGES_GENERATION & set(free) and spec.prompts:
        notes.append(PP_ONLY_NOTE)
    vram = None if is_cpu_contender(contender) else free_vram(contender)
    ubatches: list[int | None] = [None]
    if "ub" in free:
        # The defaults first, then from the largest down: a budget cut short in round 0
        # has tried the sizes a GPU is likeliest to prefer (32 rarely wins anywhere).
        own = spec.ubatch or 512
        ubatches = [own, *sorted((u for u in ubatch_values(spec) if u != own), reverse=True)]
        if (note := holds_whole_note(spec)) is not None:
            notes.append(note)
    flash: list[bool | None] = [None]
    if "fa" in free:
        flash = [spec.flash_attn, *(v for v in (True, False) if v != spec.flash_attn)]
    caches: list[tuple[str | None, str | None]] = [(None, None)]
    if "kv" in free:
        own_kv = (spec.type_k, spec.type_v)
        caches = [own_kv, *(c for c in KV_CHOICES if c != own_kv)]
    threads: list[int | None] = [None]
    if "threads" in free:
        if is_cpu_contender(contender):
            threads = _thread_values(spec)
        else:
            notes.append("threads not searched: not a CPU contender")
    if {"ncmoe", "ngl"} & set(free) and is_cpu_contender(contender):
        notes.append("-ncmoe/-ngl not searched: a CPU contender keeps everything on the CPU")
        free = tuple(f for f in free if f not in ("ncmoe", "ngl"))
    ncmoe, ngl = _split_values(free, spec, model, vram, notes)
    candidates, skipped = [], []
    for ub, fa, (ctk, ctv), t, moe, layers in product(ubatches, flash, caches, threads, ncmoe, ngl):
        candidate = Candidate(ubatch=ub, batch=None if ub is None else batch_for(spec, ub),
                              flash_attn=fa, type_k=ctk, type_v=ctv, n_cpu_moe=moe,
                              n_gpu_layers=layers, threads=t)
        problem = _problem(candidate, spec, model, vram)
        if problem:
            skipped.append(SkippedCandidate(candidate, problem))
        else:
            candidates.append(candidate)
    default = Candidate(ubatch=ubatches[0], batch=None if ubatches[0] is None else batch_for(spec, ubatches[0]),
                        flash_attn=flash[0], type_k=caches[0][0], type_v=caches[0][1],
                        n_cpu_moe=ncmoe[0], n_gpu_layers=ngl[0], threads=threads[0])
    fit = None
    if (len(ncmoe) > 1 or len(ngl) > 1) and getattr(contender, "flags", frozenset()) & {"-fitt", "--fit-target"}:
        fit = Candidate(ubatch=default.ubatch, batch=default.batch, fit_target=FIT_MARGIN_MIB)
        candidates.append(fit)
        notes.append(f"llama.cpp's own fit (-fitt {FIT_MARGIN_MIB}) is a candidate and the baseline")
    return Grid(default=default, candidates=tuple(candidates), skipped=tuple(skipped), fit=fit,
                notes=tuple(notes))
