"""Where the server disagrees with llama-bench, in one sentence.

llama-bench times forward passes in a context just big enough for its test, with one
sequence; a server allocates the context it is told to, shares it out over slots and
keeps a quantized cache if asked. Two things are worth a user's attention:

- the llama-bench verdict (the faster build at generation, for a shape) and the serving
  verdict (the build that delivers more at some server setting of that shape) pick
  different builds;
- a build's serving decode (one stream; the server's own per-request timings where it gave
  them) falls below half its llama-bench figure at some setting: a cliff llama-bench
  cannot see.

    sentence = disagreement(duel_summary, serving_verdicts)   # "" when they agree

"Vulkan wins llama-bench generation by 15%, but serving with a 32K context, q4_0 cache
ROCm is x6.0 faster: Vulkan's decode collapses there (9 t/s against 70 in llama-bench)."
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from backends.json_types import JsonValue, items_of, table_of
from profiles.serving import ServingVerdict, setting_of

COLLAPSE = 0.5  # a serving decode below this share of llama-bench's is a cliff


@dataclass(frozen=True)
class _Decode:
    """One build's one-stream decode at one server setting, beside its llama-bench figure."""

    contender: str
    shape: str
    setting: str
    serving: float
    bench: float

    @property
    def share(self) -> float:
        return self.serving / self.bench


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if value > 0 else None


def _shape(entry: Mapping[str, JsonValue]) -> str:
    base = f"pp{entry.get('n_prompt')}+tg{entry.get('n_gen')}"
    return f"{base} @ d{entry['depth']}" if entry.get("depth") else base


def _bench(duel: Mapping[str, JsonValue]) -> dict[tuple[str, str, str], float]:
    """llama-bench generation t/s by (build, shape, cache type)."""
    out: dict[tuple[str, str, str], float] = {}
    for name, data in _contenders(duel):
        for item in items_of(data.get("gaps")):
            gap = table_of(item)
            rate = _number(gap.get("bench_tg_tps"))
            if rate is not None:
                out[(name, str(gap.get("shape")), str(gap.get("cache_type") or ""))] = rate
    return out


def _contenders(duel: Mapping[str, JsonValue]) -> list[tuple[str, Mapping[str, JsonValue]]]:
    contenders = duel.get("contenders")
    if not isinstance(contenders, Mapping):
        return []
    return [(str(n), d) for n, d in contenders.items() if isinstance(d, Mapping)]


def decodes(duel: Mapping[str, JsonValue]) -> list[_Decode]:
    """Every one-stream level that served, with the build's llama-bench figure for its
    shape and cache type (or, failing that, its shape's)."""
    bench = _bench(duel)
    out = []
    for name, data in _contenders(duel):
        for entry in items_of(data.get("levels")):
            if not isinstance(entry, Mapping) or entry.get("concurrency") != 1:
                continue
            # The server's own decode timing first: a client on a loaded machine can read a
            # stream's pieces in bursts, which makes its first-to-last-token rate meaningless.
            gen = entry.get("gen_tps")
            serving = _number(entry.get("server_gen_tps")) or (
                _number(gen.get("mean")) if isinstance(gen, Mapping) else None)
            shape = _shape(entry)
            figure = bench.get((name, shape, str(entry.get("cache_type") or ""))) or bench.get(
                (name, shape, ""))
            if serving is not None and figure is not None:
                out.append(_Decode(name, shape, setting_of(entry), serving, figure))
    return out


def _bench_winner(duel: Mapping[str, JsonValue], shape: str) -> tuple[str, float] | None:
    """The faster build at llama-bench generation for ``shape`` (the duel's own cache
    type, else the first measured), and its lead as a ratio."""
    bench = _bench(duel)
    kinds = [k for (_, s, k) in bench if s == shape]
    if not kinds:
        return None
    kind = "" if "" in kinds else kinds[0]
    rates = sorted(((r, n) for (n, s, k), r in bench.items() if s == shape and k == kind), reverse=True)
    if len(rates) < 2:
        return None
    return rates[0][1], rates[0][0] / rates[1][0]


def margin_text(ratio: float) -> str:
    """``x6.0`` from twice up, ``15%`` below: "wins by 15%", "is x6.0 faster"."""
    return f"x{ratio:.1f}" if ratio >= 2 else f"{(ratio - 1) * 100:.0f}%"


def _where(setting: str) -> str:
    return f"with a {setting}" if setting else "at the duel's own setting"


def _overturned(duel: Mapping[str, JsonValue], verdicts: Sequence[ServingVerdict],
                cliffs: Sequence[_Decode]) -> str:
    """The strongest serving verdict that names another build than llama-bench does."""
    found: list[tuple[float, str]] = []
    for v in verdicts:
        if v.status != "winner" or not v.winner or not v.ratio:
            continue
        for shape in v.shapes:
            bench = _bench_winner(duel, shape)
            if bench is None or bench[0] == v.winner:
                continue
            loser, lead = bench
            text = (f"{loser} wins llama-bench generation by {margin_text(lead)}, but serving "
                    f"{_where(v.setting)} {v.winner} is {margin_text(v.ratio)} faster")
            cliff = next((d for d in cliffs if d.contender == loser and d.shape == shape
                          and d.setting == v.setting), None)
            if cliff is not None:
                text += (f": {loser}'s decode collapses there ({cliff.serving:,.0f} t/s against "
                         f"{cliff.bench:,.0f} in llama-bench)")
            found.append((v.ratio, text))
    if not found:
        return ""
    found.sort(key=lambda item: item[0], reverse=True)
    more = len(found) - 1
    return found[0][1] + (f" (and at {more} other setting{'s' if more != 1 else ''})" if more else "") + "."


def _collapse(all_decodes: Sequence[_Decode]) -> str:
    """The deepest fall below half of llama-bench, or that the server is below it everywhere."""
    cliffs = [d for d in all_decodes if d.share < COLLAPSE]
    if not cliffs:
        return ""
    worst = min(cliffs, key=lambda d: d.share)
    mine = [d for d in all_decodes if d.contender == worst.contender]
    if len(mine) > 1 and all(d.share < COLLAPSE for d in mine):
        best = max(mine, key=lambda d: d.share)
        return (f"{worst.contender}'s serving decode is under half its llama-bench figure at every "
                f"setting (x{best.share:.2f} at best, x{worst.share:.2f} {_where(worst.setting)}): "
                "the server's own overhead, more than a cliff of one setting.")
    return (f"{worst.contender}'s serving decode collapses {_where(worst.setting)}: "
            f"{worst.serving:,.0f} t/s against {worst.bench:,.0f} in llama-bench "
            f"(x{worst.share:.2f}) at {worst.shape}.")


def disagreement(duel: Mapping[str, JsonValue], verdicts: Sequence[ServingVerdict]) -> str:
    """One sentence where llama-bench and the server part ways; "" when they agree."""
    all_decodes = decodes(duel)
    cliffs = [d for d in all_decodes if d.share < COLLAPSE]
    return _overturned(duel, verdicts, cliffs) or _collapse(all_decodes)
