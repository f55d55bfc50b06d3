"""llama-bench against llama-server: the same build, model, shape and settings.

llama-bench times the model's forward passes alone (prompt processing of ``-p`` tokens at
depth ``-d``, then ``-n`` generated tokens one by one, no sampling, no HTTP); a server
request adds tokenizing, the chat template, sampling, detokenizing, streaming and the
slot scheduler. The gap says how much of llama-bench's rate a user of the server sees.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from pathlib import Path

from backends import procs
from backends.journal.serve import BenchGap, Level, LevelSummary
from backends.server.launch import ServedBuild, ServerSettings

BENCH_TOOL = "llama-bench"
_FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def bench_argv(bench: Path | str, help_text: str, model: str, level: Level,
               settings: ServerSettings, repetitions: int) -> list[str]:
    """llama-bench flags for ``level``'s shape, written the way this version takes them."""
    flags = set(_FLAG.findall(help_text))
    fa_line = next((line for line in help_text.splitlines() if "--flash-attn" in line), "")
    argv = [str(bench), "-m", model, "-p", str(level.n_prompt), "-n", str(level.n_gen),
            "-r", str(repetitions), "-o", "jsonl", "-ngl", str(settings.n_gpu_layers)]
    if level.depth:
        argv += ["-d", str(level.depth)]
    if settings.flash_attn is not None:
        on = "on|off" in fa_line
        argv += ["-fa", ("on" if settings.flash_attn else "off") if on
                 else ("1" if settings.flash_attn else "0")]
    pairs = (("-ctk", settings.type_k), ("-ctv", settings.type_v), ("-ncmoe", settings.n_cpu_moe),
             ("-b", settings.n_batch), ("-ub", settings.n_ubatch), ("-t", settings.threads))
    argv += [item for flag, value in pairs if value is not None for item in (flag, str(value))]
    if settings.no_mmap:
        argv += ["-lm", "none"] if "-lm" in flags else ["-mmp", "0"]
    return argv


async def _run(argv: Sequence[str], env: dict[str, str], timeout: float) -> tuple[int | None, str, str]:
    process = await procs.spawn(argv, env=env)
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        return None, "", ""
    finally:
        if process.returncode is None:
            await procs.stop(process)
    return process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def bench_rates(stdout: str) -> tuple[float | None, float | None]:
    """Prompt and generation tokens/s from llama-bench's JSONL records."""
    pp: float | None = None
    tg: float | None = None
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "avg_ts" not in record:
            continue
        if record.get("n_prompt") and not record.get("n_gen"):
            pp = float(record["avg_ts"])
        elif record.get("n_gen") and not record.get("n_prompt"):
            tg = float(record["avg_ts"])
    return pp, tg


def _ratio(server: float | None, bench: float | None) -> float | None:
    return server / bench if server and bench else None


async def measure_gap(contender: ServedBuild, model: str, level: Level, settings: ServerSettings,
                      summary: LevelSummary | None, *, repetitions: int = 3,
                      timeout: float = 600.0) -> BenchGap:
    """Run llama-bench for ``level``'s shape and set it beside the server's concurrency-1 run."""
    server_pp = summary.prompt_tps.mean if summary else None
    server_tg = summary.gen_tps.mean if summary else None

    def gap(bench_pp: float | None, bench_tg: float | None, problem: str | None,
            argv: Sequence[str] = ()) -> BenchGap:
        return BenchGap(contender=contender.name, shape=level.shape, n_prompt=level.n_prompt,
                        n_gen=level.n_gen, depth=level.depth, bench_pp_tps=bench_pp,
                        bench_tg_tps=bench_tg, server_pp_tps=server_pp, server_tg_tps=server_tg,
                        pp_ratio=_ratio(server_pp, bench_pp), tg_ratio=_ratio(server_tg, bench_tg),
                        problem=problem, bench_argv=tuple(argv), cache_type=level.cache_type,
                        timings_pp_tps=summary.server_prompt_tps if summary else None,
                        timings_tg_tps=summary.server_gen_tps if summary else None)

    bench = Path(contender.folder) / BENCH_TOOL
    if not bench.is_file():
        return gap(None, None, f"no {BENCH_TOOL} in {contender.folder}")
    if summary is None or not summary.requests:
        return gap(None, None, "no finished server requests at concurrency 1 for this shape")
    try:
        _, help_out, help_err = await _run([str(bench), "--help"], contender.env, 30.0)
        argv = bench_argv(bench, help_out + help_err, model, level, settings, repetitions)
        code, out, err = await _run(argv, contender.env, timeout)
    except OSError as error:
        return gap(None, None, f"{BENCH_TOOL} cannot start: {error.strerror or error}")
    pp, tg = bench_rates(out)
    if code != 0 or pp is None or tg is None:
        tail = next((line.strip() for line in reversed(err.splitlines()) if line.strip()), "")
        why = "did not finish in time" if code is None else procs.describe_exit(code)[0]
        return gap(pp, tg, f"{BENCH_TOOL} {why}" + (f": {tail[:200]}" if tail else ""), argv)
    return gap(pp, tg, None, argv)
