#!/usr/bin/env python3
"""The journal codec against the standard library: encode and decode a 10,000-event journal.

    python3 benchmarks/codec_choice.py [--events 10000] [--rounds 5]

The journal's mix: results with llama-bench's raw record, progress lines and telemetry
ticks. ``backends.journal.codec`` (msgspec, from the dataclasses' type hints) against the standard
json module with ``dataclasses.asdict`` to encode and one hand-written constructor per
class to decode (what the journal did before, field by field). Prints medians in ms.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.journal.journal import RECORDS
from backends.journal.sweep import BenchResult, PointProgress, ResultReceived, TelemetryRecorded, TestPoint

RAW = {"build_commit": "abc1234", "build_number": 11434, "cpu_info": "AMD EPYC", "gpu_info": "AMD Instinct MI50",
       "backends": "ROCm", "model_filename": "qwen3-8b-q8_0.gguf", "model_type": "qwen3 8B Q8_0",
       "n_batch": 2048, "n_ubatch": 512, "n_threads": 16, "type_k": "f16", "type_v": "f16",
       "n_gpu_layers": 99, "flash_attn": 1, "n_prompt": 512, "n_gen": 0, "n_depth": 4096,
       "avg_ns": 51234567, "stddev_ns": 123456, "avg_ts": 9993.1, "stddev_ts": 24.1,
       "samples_ns": [51234567] * 5, "samples_ts": [9993.1] * 5}
SAMPLE = {"at": 1.0, "devices": [{"label": "0000:03:00.0", "vram_used": 17_000_000_000, "vram_total": 34_000_000_000,
                                  "edge_c": 61.0, "junction_c": 78.0, "mem_c": 70.0, "power_w": 187.0,
                                  "busy_pct": 99.0, "sclk_mhz": 1725, "mclk_mhz": 1000}],
          "host": {"cpu_pct": 12.5, "ram_used": 8_000_000_000, "ram_total": 64_000_000_000}}


def journal(count: int) -> list[Any]:
    point = TestPoint(512, 0, 4096)
    events: list[Any] = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            result = BenchResult(point, 9993.1 + i, 24.1, (9990.0, 9993.0, 9996.0), raw=dict(RAW), warmup_ts=(9900.0,))
            events.append(ResultReceived("rocm", result, at=float(i), telemetry={"peak_vram_bytes": 1 << 34}))
        elif kind == 1:
            events.append(PointProgress("rocm", point, f"prompt run {i % 5}/5", at=float(i)))
        else:
            events.append(TelemetryRecorded(dict(SAMPLE), at=float(i)))
    return events


def stdlib_encode(event: Any) -> str:
    return json.dumps({"type": type(event).__name__, **dataclasses.asdict(event)})


def _point(data: dict[str, Any]) -> TestPoint:
    return TestPoint(data["n_prompt"], data["n_gen"], data["depth"])


def stdlib_decode(line: str) -> Any:
    data = json.loads(line)
    kind = data.pop("type")
    if kind == "ResultReceived":
        r = data["result"]
        result = BenchResult(_point(r["point"]), r["avg_ts"], r["stddev_ts"], tuple(r["samples_ts"]), raw=r["raw"],
                             warmup_ts=tuple(r["warmup_ts"]))
        return ResultReceived(data["build"], result, data["at"], data["telemetry"], data["block"], data["throttled"])
    if kind == "PointProgress":
        return PointProgress(data["build"], _point(data["point"]), data["message"], data["at"])
    return TelemetryRecorded(data["sample"], data["at"])


def timed(function: Any, items: list[Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for item in items:
            function(item)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    events = journal(options.events)
    ours = [RECORDS.encode(e) for e in events]
    theirs = [stdlib_encode(e) for e in events]
    assert [RECORDS.decode(line) for line in ours] == [stdlib_decode(line) for line in theirs] == events
    rows = [("msgspec (backends.journal.codec)", timed(RECORDS.encode, events, options.rounds),
             timed(RECORDS.decode, ours, options.rounds)),
            ("json + dataclasses.asdict", timed(stdlib_encode, events, options.rounds),
             timed(stdlib_decode, theirs, options.rounds))]
    print(f"{options.events} events, median of {options.rounds} rounds")
    for name, encode_ms, decode_ms in rows:
        print(f"{name:28} encode {encode_ms:7.1f} ms   decode {decode_ms:7.1f} ms")
    print(f"ratio (stdlib / msgspec): encode x{rows[1][1] / rows[0][1]:.1f}, decode x{rows[1][2] / rows[0][2]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
