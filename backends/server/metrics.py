"""The server's ``/metrics`` (Prometheus text) and the statistics of a load level."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import httpx

from backends.journal.serve import (
    Dist,
    Level,
    LevelSummary,
    RequestFailed,
    RequestFinished,
)

PREFIX = "llamacpp:"
COUNTERS = ("prompt_tokens_total", "prompt_tokens_cached_total", "prompt_seconds_total",
            "tokens_predicted_total", "tokens_predicted_seconds_total", "n_decode_total")


def parse_metrics(text: str) -> dict[str, float]:
    """``llamacpp:name value`` lines as ``{name: value}`` (labels and comments skipped)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(PREFIX):
            continue
        name, _, rest = line[len(PREFIX):].partition(" ")
        if "{" in name:
            continue
        try:
            values[name] = float(rest.split()[0])
        except (ValueError, IndexError):
            continue
    return values


async def scrape(client: httpx.AsyncClient) -> dict[str, float] | str:
    """The server's metrics now, or one line saying why it did not give them."""
    for attempt in range(2):  # once more on a fresh connection: a kept-alive one may be stale
        try:
            response = await client.get("/metrics", timeout=30.0)
            break
        except httpx.HTTPError as error:
            if attempt:
                return f"/metrics did not answer: {type(error).__name__} {error}".strip()
    if response.status_code != 200:
        return f"/metrics answered HTTP {response.status_code}"
    return parse_metrics(response.text)


def metric_deltas(before: Mapping[str, float], after: Mapping[str, float],
                  ) -> tuple[dict[str, float], dict[str, float]]:
    """Counter increases over a level and the gauges at its end, plus derived rates.

    ``server_prompt_tps`` and ``server_gen_tps`` divide tokens by the seconds the slots
    spent: with several slots busy at once, that is a per-slot (per-stream) rate.
    """
    deltas = {name: after[name] - before.get(name, 0.0) for name in COUNTERS if name in after}
    gauges = {name: value for name, value in after.items() if name not in COUNTERS}
    if deltas.get("prompt_seconds_total"):
        deltas["server_prompt_tps"] = deltas.get("prompt_tokens_total", 0.0) / deltas["prompt_seconds_total"]
    if deltas.get("tokens_predicted_seconds_total"):
        deltas["server_gen_tps"] = (deltas.get("tokens_predicted_total", 0.0)
                                    / deltas["tokens_predicted_seconds_total"])
    return deltas, gauges


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of sorted values."""
    if len(ordered) == 1:
        return ordered[0]
    rank = q / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def dist(samples: Iterable[float | None]) -> Dist:
    values = sorted(v for v in samples if v is not None and math.isfinite(v))
    if not values:
        return Dist(count=0, mean=None, p50=None, p90=None, p99=None)
    return Dist(count=len(values), mean=sum(values) / len(values),
                p50=percentile(values, 50), p90=percentile(values, 90),
                p99=percentile(values, 99), minimum=values[0], maximum=values[-1])


def inter_token_gaps(finished: RequestFinished) -> list[float]:
    """Gaps between tokens: a piece bringing k tokens after a gap g counts k gaps of g/k."""
    gaps: list[float] = []
    times, tokens = finished.chunk_times, finished.chunk_tokens
    for index in range(1, len(times)):
        brought = max(1, tokens[index])
        gaps += [(times[index] - times[index - 1]) / brought] * brought
    return gaps


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(contender: str, level: Level, finished: Sequence[RequestFinished],
              failed: Sequence[RequestFailed], wall_s: float) -> LevelSummary:
    """A level's numbers for a verdict: distributions plus the raw per-request samples."""
    gen = [f.gen_tps for f in finished if f.gen_tps is not None]
    ttft = [f.ttft_s for f in finished]
    e2e = [f.e2e_s for f in finished]
    total_tokens = sum(f.n_gen for f in finished)
    server_pp = [f.timings["prompt_per_second"] for f in finished
                 if f.timings.get("prompt_per_second")]
    server_tg = [f.timings["predicted_per_second"] for f in finished
                 if f.timings.get("predicted_per_second")]
    reasons = tuple(dict.fromkeys(f.reason for f in failed))
    short = sum(1 for f in failed if f.short)
    return LevelSummary(
        contender=contender, level=level, requests=len(finished), errors=len(failed) - short,
        short=short,
        ttft_s=dist(ttft), itl_s=dist(g for f in finished for g in inter_token_gaps(f)),
        e2e_s=dist(e2e), gen_tps=dist(gen), prompt_tps=dist(f.prompt_tps for f in finished),
        total_tps=total_tokens / wall_s if wall_s > 0 and finished else None,
        total_tokens=total_tokens, wall_s=wall_s, gen_tps_samples=tuple(gen),
        ttft_samples=tuple(ttft), e2e_samples=tuple(e2e),
        server_prompt_tps=_mean(server_pp), server_gen_tps=_mean(server_tg),
        error_reasons=reasons[:5],
    )
