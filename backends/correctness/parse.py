"""Reading llama-perplexity's output: perplexity, KL divergence, top-1 agreement, errors."""

from __future__ import annotations

import re
from dataclasses import dataclass

# --- parsing llama-perplexity's output ------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)"
_FINAL_PPL = re.compile(rf"Final estimate:\s*PPL\s*=\s*({_NUMBER})", re.IGNORECASE)
_RUNNING_PPL = re.compile(rf"\[(\d+)\]({_NUMBER}),")
_MEAN_PPL_Q = re.compile(rf"Mean PPL\(Q\)\s*:\s*({_NUMBER})", re.IGNORECASE)
_MEAN_PPL_BASE = re.compile(rf"Mean PPL\(base\)\s*:\s*({_NUMBER})", re.IGNORECASE)
_MEAN_KLD = re.compile(rf"Mean\s+KLD\s*:\s*({_NUMBER})", re.IGNORECASE)
_SAME_TOP = re.compile(rf"Same top p\s*:\s*({_NUMBER})", re.IGNORECASE)
_TOO_FEW_TOKENS = re.compile(r"tokenizes to only (\d+) tokens")
_CHUNKS = re.compile(r"over (\d+) chunks, n_ctx=(\d+)")
# llama.cpp's log prefix: "0.00.018.724 E " (time, level), or none when timestamps are off.
_ERROR_LINE = re.compile(r"^(?:\d+\.\d+\.\d+\.\d+\s+)?E\s+(.*\S)")
_OTHER_LEVEL_LINE = re.compile(r"^\d+\.\d+\.\d+\.\d+\s+[IWD]\s")
_ERROR_WORDS = re.compile(r"error|failed|unable|cannot|abort|exception|what\(\)", re.IGNORECASE)


def _float(text: str) -> float:
    return float(text.lower().replace("-nan", "nan"))


def _last(pattern: re.Pattern[str], text: str) -> str | None:
    matches = pattern.findall(text)
    if not matches:
        return None
    last = matches[-1]
    return str(last[-1] if isinstance(last, tuple) else last)


@dataclass(frozen=True)
class PerplexityRun:
    """What one ``llama-perplexity`` run over the text reported."""

    ppl: float | None
    chunks: int | None
    context: int | None
    too_few_tokens: int | None  # tokens in the text when it was too short for the context


def parse_perplexity_output(text: str) -> PerplexityRun:
    """The final perplexity; the running estimate only when it covers every chunk (the log
    may have lost its last lines, and a partial estimate is a different number)."""
    chunks = _CHUNKS.findall(text)
    n_chunks = int(chunks[-1][0]) if chunks else None
    final = _last(_FINAL_PPL, text)
    if final is None:
        running = _RUNNING_PPL.findall(text)  # "[N]value," after each chunk
        if running and n_chunks is not None and int(running[-1][0]) == n_chunks:
            final = running[-1][1]
    too_few = _last(_TOO_FEW_TOKENS, text)
    return PerplexityRun(
        ppl=_float(final) if final is not None else None,
        chunks=n_chunks,
        context=int(chunks[-1][1]) if chunks else None,
        too_few_tokens=int(too_few) if too_few is not None else None,
    )


@dataclass(frozen=True)
class DivergenceRun:
    """What one ``llama-perplexity --kl-divergence`` run reported."""

    mean_kld: float | None
    top1_agreement: float | None  # fraction
    ppl: float | None
    ppl_base: float | None
    chunks: int | None


def _last_chunk_row(text: str) -> list[float] | None:
    """The last per-chunk row: chunk, PPL ± u, ln ratio ± u, KLD ± u, Δp RMS ± u %, top ± u %.

    llama.cpp prints the summary block only after 100 scored tokens; the rows come always.
    """
    row = None
    for line in text.splitlines():
        fields = [f for f in line.replace("±", " ").replace("%", " ").split() if f != "+/-"]
        if len(fields) != 11 or not fields[0].isdigit():
            continue
        try:
            row = [_float(f) for f in fields]
        except ValueError:
            continue
    return row


def parse_divergence_output(text: str) -> DivergenceRun:
    """The summary block when it is all there ("Same top p" is its last line), else the
    last chunk row when it is the last chunk; top-1 agreement in percent, as printed."""
    chunks = _CHUNKS.findall(text)
    n_chunks = int(chunks[-1][0]) if chunks else None
    mean_kld, same_top = _last(_MEAN_KLD, text), _last(_SAME_TOP, text)
    if mean_kld is not None and same_top is not None:
        ppl, ppl_base = _last(_MEAN_PPL_Q, text), _last(_MEAN_PPL_BASE, text)
        return DivergenceRun(
            mean_kld=_float(mean_kld), top1_agreement=_float(same_top),
            ppl=_float(ppl) if ppl else None, ppl_base=_float(ppl_base) if ppl_base else None,
            chunks=n_chunks)
    row = _last_chunk_row(text)
    if row is None or n_chunks is None or int(row[0]) != n_chunks:
        return DivergenceRun(None, None, None, None, n_chunks)
    return DivergenceRun(mean_kld=row[5], top1_agreement=row[9], ppl=row[1], ppl_base=None,
                         chunks=n_chunks)


def _percent_to_fraction(run: DivergenceRun) -> DivergenceRun:
    top = run.top1_agreement
    return DivergenceRun(run.mean_kld, None if top is None else top / 100.0, run.ppl,
                         run.ppl_base, run.chunks)


NO_REASON = "its log gave no reason"


def error_line(output: str) -> str | None:
    """The last line llama.cpp logged as an error, else the last one that reads like one."""
    lines = output.splitlines()
    logged = [m.group(1) for m in map(_ERROR_LINE.match, lines) if m]
    telling = [line for line in logged if "error loading model" in line]
    logged = telling or logged
    # Else an untagged line such as a C++ exception or GGML_ASSERT; info and warning lines
    # may hold those words innocently (a path with "failed" in it).
    found = logged[-1] if logged else next(
        (line.strip() for line in reversed(lines[-40:])
         if _ERROR_WORDS.search(line) and not _OTHER_LEVEL_LINE.match(line)), None)
    if found and len(found) > 200:
        found = found[:197] + "..."
    return found


