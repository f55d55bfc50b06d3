#!/usr/bin/env python3
"""``llamaduel recommend`` on big inputs: a 1,000,000-row ``-o csv`` file, and ``-o sql`` dumps
and ``.sqlite`` databases of growing size.

Goals: the CSV in at most 10 s and 300 MB (wall time and peak RSS of the command, measured
from outside); SQL and SQLite import time growing linearly with size (a 20 MB dump in
seconds). Prints figures; asserts nothing.

    PYTHONPATH=$PWD python3 benchmarks/recommend_big.py [--rows 1000000] [--shape nightly|distinct]

Shapes of the CSV: ``nightly`` is a database of repeated nightly runs (16 contenders: 4 ROCm
and 4 Vulkan build numbers, 2 ubatch sizes; 5 models; pp512 and tg128 at 9 depths; every
configuration measured again night after night); ``distinct`` makes nearly every row a test
no other row measures (2,000 models), the worst case for memory.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEADER = ("build_commit,build_number,cpu_info,gpu_info,backends,model_filename,model_type,model_size,"
          "model_n_params,n_batch,n_ubatch,n_threads,cpu_mask,cpu_strict,poll,type_k,type_v,n_gpu_layers,"
          "n_cpu_moe,split_mode,main_gpu,no_kv_offload,flash_attn,devices,tensor_split,tensor_buft_overrides,"
          "load_mode,lazy_mode,embeddings,no_op_offload,no_host,repack,fit_target,fit_min_ctx,n_prompt,n_gen,"
          "n_depth,test_time,avg_ns,stddev_ns,avg_ts,stddev_ts")
DEPTHS = (0, 4096, 8192, 12288, 16384, 24576, 32768, 49152, 65536)


def _row(rng: random.Random, backend: str, number: int, ub: int, model: int, n_prompt: int, n_gen: int,
         depth: int) -> str:
    base = (1500.0 if n_prompt else 60.0) * (1.2 if backend == "ROCm" else 1.0) / (1 + depth / 32768)
    speed = base * rng.lognormvariate(0, 0.02) * (1 + ub / 20480)
    sd = speed * 0.01
    return (f'"c{number:07x}","{number}","AMD Ryzen AI MAX+ 395","Radeon 8060S Graphics","{backend}",'
            f'"/models/m{model}.gguf","llama 8B Q4_0","4661211136","8030261248","2048","{ub}","16","0x0","0",'
            f'"50","f16","f16","99","0","layer","0","0","1","auto","0.00","none","auto","auto","0","0","0","1",'
            f'"0","0","{n_prompt}","{n_gen}","{depth}","2026-01-01T00:00:00Z","{int(1e9 * (n_prompt or n_gen) / speed)}",'
            f'"0","{speed:.6f}","{sd:.6f}"\n')


def write_csv(path: Path, rows: int, shape: str) -> None:
    rng = random.Random(1)
    builds = [("ROCm", 7000 + i) for i in range(4)] + [("Vulkan", 7000 + i) for i in range(4)]
    models = 5 if shape == "nightly" else 2000
    cells = [(b, n, ub, m, p, g, d) for b, n in builds for ub in (512, 2048) for m in range(models)
             for p, g in ((512, 0), (0, 128)) for d in DEPTHS]
    with open(path, "w") as out:
        out.write(HEADER + "\n")
        written = 0
        while written < rows:
            for cell in cells:
                out.write(_row(rng, *cell))
                written += 1
                if written >= rows:
                    break


def measure(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds (user + system) of a child process. On a
    shared, loaded machine the CPU seconds are the figure to compare: wall time there mostly
    measures the other processes."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{argv} failed: {child.stderr.read().decode()[-500:] if child.stderr else ''}")
    return wall, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime


def sql_dump(path: Path, rows: int) -> None:
    rng = random.Random(2)
    columns = HEADER.split(",")
    with open(path, "w") as out:
        out.write("CREATE TABLE IF NOT EXISTS llama_bench (" + ", ".join(f"{c} TEXT" for c in columns) + ");\n")
        for i in range(rows):
            values = _row(rng, "ROCm" if i % 2 else "Vulkan", 7000, 512, i % 50, 512 if i % 4 < 2 else 0,
                          0 if i % 4 < 2 else 128, DEPTHS[i % 9]).strip().split(",")
            values = ["'" + v.strip('"').replace("'", "''") + "'" for v in values]
            out.write(f"INSERT INTO llama_bench ({', '.join(columns)}) VALUES ({', '.join(values)});\n")


def bench_sql(folder: Path) -> None:
    print("\n-o sql and .sqlite import (profiles.importers.import_files):")
    print(f"{'dump MB':>8} {'rows':>8} {'sql s':>7} {'sql MB/s':>9} {'sqlite s':>9}")
    for rows in (6_250, 12_500, 25_000, 50_000):
        dump = folder / f"bench-{rows}.sql"
        sql_dump(dump, rows)
        db = folder / f"bench-{rows}.sqlite"
        with sqlite3.connect(db) as connection:
            connection.executescript(dump.read_text())
        size = dump.stat().st_size / 1e6
        sql_s, _, _ = measure([sys.executable, "-c", f"from profiles.importers import import_files; import_files([{str(dump)!r}])"])
        lite_s, _, _ = measure([sys.executable, "-c", f"from profiles.importers import import_files; import_files([{str(db)!r}])"])
        print(f"{size:8.1f} {rows:8,} {sql_s:7.2f} {size / sql_s:9.1f} {lite_s:9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shape", choices=("nightly", "distinct", "both"), default="both")
    parser.add_argument("--skip-sql", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for shape in (("nightly", "distinct") if options.shape == "both" else (options.shape,)):
            csv_path = folder / f"{shape}.csv"
            write_csv(csv_path, options.rows, shape)
            wall, rss, cpu = measure([sys.executable, "-m", "tui.cli", "recommend", str(csv_path), "--format", "csv"])
            print(f"recommend on {options.rows:,} rows ({shape}, {csv_path.stat().st_size / 1e6:.0f} MB): "
                  f"{wall:.2f} s, {cpu:.2f} CPU s, peak RSS {rss:.0f} MB, load {os.getloadavg()[0]:.1f}")
        if not options.skip_sql:
            bench_sql(folder)


if __name__ == "__main__":
    main()
