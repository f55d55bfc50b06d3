#!/usr/bin/env python3
"""CUDA vs Vulkan on one NVIDIA GPU through llamaduel, measured against bare llama-bench.

Runs on a GPU machine with CUDA's compiler, from a checkout, in stages:

    python3 scripts/gpu_proof.py start --work /tmp/proof --src llama-src.tgz --vulkan vulkan-bin.txz
    python3 scripts/gpu_proof.py wait --work /tmp/proof --max 560 [--pack OUT_DIR]

``start`` launches the whole pipeline in its own session (so it outlives one command) and
returns; ``wait`` follows its log until it finishes or ``--max`` seconds pass, then packs
what came out. The pipeline:

1. builds llama-bench, llama-completion and llama-perplexity for CUDA from the source
   tarball (a Vulkan build, made where a shader compiler is, comes as a tarball);
2. writes a Qwen3-8B-shaped dense model (Q8_0) and a Qwen3-30B-A3B-shaped MoE (Q4_0),
   random weights at real shapes (speed does not depend on the weights);
3. runs the seed-sweep preset on both models and moe-split on the MoE through
   ``llamaduel bench`` (builds interleaved, NVML telemetry attached, profiles saved), each
   followed by bare llama-bench on the same points: tok/s and wall-time ratios;
4. drives the app headless (Pilot) Setup -> Run -> Results, with screenshots;
5. runs the correctness check (KL divergence CUDA vs Vulkan) and the telemetry cost benchmark.

Figures land in ``<work>/out/figures.json``; logs in ``<work>/out/log.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

REPETITIONS = 3  # the presets' own counts, cut to 3 to fit the GPU machine's time limits
STAGES = ("cuda", "vulkan", "models", "dense", "moe", "split", "app", "check", "telemetry")


class Pipeline:
    def __init__(self, work: Path, src: Path, vulkan: Path, stages: list[str],
                 bench_args: list[str] | None = None):
        self.work = work
        self.bench_args = bench_args or []  # grid overrides, for a quick dry run
        self.src = src
        self.vulkan_tar = vulkan
        self.stages = stages
        self.out = work / "out"
        self.out.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out / "log.txt"
        self.figures_path = self.out / "figures.json"
        self.figures = json.loads(self.figures_path.read_text()) if self.figures_path.is_file() else {}
        self.cuda_bin = work / "cuda" / "bin"
        self.vulkan_bin = work / "vulkan" / "bin"
        self.dense = work / "models" / "qwen3-8b-q8_0.gguf"
        self.moe = work / "models" / "qwen3-30b-a3b-q4_0.gguf"

    def log(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        print(line, flush=True)
        with open(self.log_path, "a") as handle:
            handle.write(line + "\n")

    def record(self, key: str, value) -> None:
        self.figures[key] = value
        self.figures_path.write_text(json.dumps(self.figures, indent=2))

    def run(self, argv: list[str], *, log_name: str | None = None, env=None, check=True) -> subprocess.CompletedProcess:
        self.log("$ " + " ".join(str(a) for a in argv))
        started = time.perf_counter()
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                              env={**os.environ, **(env or {})}, cwd=REPO)
        wall = time.perf_counter() - started
        if log_name:
            (self.out / log_name).write_text(done.stdout + "\n--- stderr ---\n" + done.stderr[-20000:])
        self.log(f"  exit {done.returncode} after {wall:.1f} s")
        if check and done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr[-2000:]}")
        return done

    def main(self) -> None:
        for stage in self.stages:
            started = time.perf_counter()
            self.log(f"== {stage}")
            try:
                getattr(self, f"stage_{stage}")()
            except Exception as error:  # keep going: later stages may still work
                self.log(f"!! {stage} failed: {error}")
                self.record(f"{stage}_error", str(error)[-1500:])
            self.record(f"{stage}_seconds", round(time.perf_counter() - started, 1))
        self.log("== done")

    def stage_cuda(self) -> None:
        if (self.cuda_bin / "llama-bench").is_file():
            return
        with tarfile.open(self.src) as tar:
            tar.extractall(self.work / "src", filter="data")
        build = self.work / "cuda-build"
        self.run(["cmake", "-S", self.work / "src" / "llama.cpp", "-B", build, "-G", "Ninja",
                  "-DCMAKE_BUILD_TYPE=Release", "-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=90",
                  "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF",
                  "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF"],
                 log_name="cuda-configure.txt")
        self.run(["cmake", "--build", build, "--target", "llama-bench", "llama-completion",
                  "llama-perplexity", "-j", str(os.cpu_count() or 16)], log_name="cuda-build.txt")
        self.cuda_bin.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(build / "bin", self.cuda_bin)

    def stage_vulkan(self) -> None:
        if not (self.vulkan_bin / "llama-bench").is_file():
            with tarfile.open(self.vulkan_tar) as tar:
                tar.extractall(self.work / "vulkan", filter="data")
        done = self.run(["python3", "-m", "tui.cli", "builds", "--build", f"cuda={self.cuda_bin}",
                         "--build", f"vulkan={self.vulkan_bin}", "--json"])
        (self.out / "builds.json").write_text(done.stdout)
        self.record("builds", json.loads(done.stdout) if done.stdout.strip().startswith(("[", "{")) else done.stdout)

    def stage_models(self) -> None:
        for path, shape in ((self.dense, "qwen3-8b"), (self.moe, "qwen3-30b-a3b")):
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                started = time.perf_counter()
                self.run(["python3", "-m", "backends.synth", path, "--shape", shape])
                self.record(f"model_{shape}_write_s", round(time.perf_counter() - started, 1))
            self.record(f"model_{shape}_bytes", path.stat().st_size)

    def sweep(self, label: str, model: Path, preset: str, fidelity: bool) -> None:
        """llamaduel's interleaved sweep, then bare llama-bench per build on the same points."""
        import psutil

        from backends.builds import probe_build
        from backends.runner import read_journal
        from backends.events import ResultReceived, SweepNote, SweepStarted
        from backends.sweep import SweepSpec, bench_argv

        run_dir = self.work / "runs" / label
        argv = ["python3", "-m", "tui.cli", "bench", "--build", f"cuda={self.cuda_bin}",
                "--build", f"vulkan={self.vulkan_bin}", "--model", str(model), "--preset", preset,
                "-r", str(REPETITIONS), "--run-dir", str(run_dir), "--save", f"h100-{label}",
                "--store", str(self.out / "profiles"), *self.bench_args]
        self.log("$ " + " ".join(argv))
        started = time.perf_counter()
        with open(self.out / f"{label}-bench.txt", "w") as sink:
            child = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO)
            watched = psutil.Process(child.pid)
            cpu = 0.0
            while child.poll() is None:
                try:
                    times = watched.cpu_times()  # the app's own CPU, children excluded
                    cpu = times.user + times.system
                except psutil.Error:
                    pass
                time.sleep(0.5)
        duel_wall = time.perf_counter() - started
        self.log(f"  llamaduel {label}: exit {child.returncode} after {duel_wall:.1f} s, own CPU {cpu:.2f} s")
        events = read_journal(run_dir)
        start = next(e for e in events if isinstance(e, SweepStarted))
        duel = {(e.build, e.result.point.key): e.result.avg_ts for e in events if isinstance(e, ResultReceived)}
        notes = [e.message for e in events if isinstance(e, SweepNote)] + list(start.notes)
        figures = {"wall_llamaduel_s": round(duel_wall, 1), "app_cpu_s": round(cpu, 2),
                   "app_cpu_percent_of_core": round(100 * cpu / duel_wall, 2), "notes": notes,
                   "results": {f"{b}|{k}": v for (b, k), v in duel.items()}}
        if fidelity:
            spec = SweepSpec.from_json(start.spec)
            bare, bare_wall = {}, 0.0
            for name, folder in (("cuda", self.cuda_bin), ("vulkan", self.vulkan_bin)):
                build = probe_build(folder, name)
                command = bench_argv(build, model, spec, spec.points())
                began = time.perf_counter()
                done = self.run(command, env=dict(build.env), log_name=f"{label}-bare-{name}.jsonl")
                bare_wall += time.perf_counter() - began
                for line in done.stdout.splitlines():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    key = f"{record['n_prompt']}:{record['n_gen']}:{record['n_depth']}"
                    bare[(name, key)] = float(record["avg_ts"])
            ratios: dict[str, list[float]] = {}
            for (name, key), speed in bare.items():
                if (name, key) in duel and speed:
                    kind = "pp" if key.split(":")[1] == "0" else "tg"
                    ratios.setdefault(f"{name}-{kind}", []).append(duel[(name, key)] / speed)
            figures.update({
                "wall_bare_s": round(bare_wall, 1),
                "wall_ratio": round(duel_wall / bare_wall, 3),
                "median_tps_ratio": {k: round(statistics.median(v), 4) for k, v in ratios.items()},
                "bare_results": {f"{b}|{k}": v for (b, k), v in bare.items()},
            })
        self.record(label, figures)

    def stage_dense(self) -> None:
        self.sweep("qwen3-8b-seed-sweep", self.dense, "seed-sweep", fidelity=True)

    def stage_moe(self) -> None:
        self.sweep("qwen3-30b-a3b-seed-sweep", self.moe, "seed-sweep", fidelity=True)

    def stage_split(self) -> None:
        self.sweep("qwen3-30b-a3b-moe-split", self.moe, "moe-split", fidelity=True)

    def stage_app(self) -> None:
        """The real app, driven by Pilot: Setup -> Run -> Results, screenshots on the way."""
        import asyncio

        done = asyncio.run(drive_app(
            [("cuda", self.cuda_bin), ("vulkan", self.vulkan_bin)], self.dense,
            self.out / "screenshots", {"prompts": "512", "gens": "128",
                                       "depths": "0,4096,16384", "reps": "2"}))
        self.record("app", done)

    def stage_check(self) -> None:
        done = self.run(["python3", "-m", "tui.cli", "check", "--build", f"cuda={self.cuda_bin}",
                         "--build", f"vulkan={self.vulkan_bin}", "--model", str(self.dense),
                         "--reference", "cuda", "--json"], log_name="check.txt", check=False)
        self.record("check", done.stdout[-4000:])

    def stage_telemetry(self) -> None:
        done = self.run(["python3", "benchmarks/telemetry_cost.py"], log_name="telemetry.txt", check=False)
        self.record("telemetry_cost", done.stdout[-3000:])
        done = self.run(["python3", "-m", "tui.cli", "telemetry", "--count", "3", "--interval", "0.5"],
                        check=False)
        self.record("telemetry_lines", done.stdout[-2000:])


async def drive_app(builds: list[tuple[str, Path]], model: Path, shots: Path,
                    grid: dict[str, str], size: tuple[int, int] = (160, 48)) -> dict:
    """Run a sweep in the real app headless; save the Run screen mid-run and Results at the end."""
    import tempfile

    from backends.builds import probe_build
    from backends.models import read_model
    from backends.telemetry import Telemetry
    from profiles.store import ProfileStore
    from tui.app import LlamaduelApp

    shots.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="llamaduel-app-"))
    probed = [probe_build(path, name) for name, path in builds]
    app = LlamaduelApp(probed, [read_model(model)], telemetry=Telemetry(),
                       store=ProfileStore(shots.parent / "profiles"), runs_root=folder / "runs",
                       offer_resume=False)
    saved, started = [], time.perf_counter()
    async with app.run_test(size=size) as pilot:
        setup = app.screen
        for key, value in grid.items():
            setup.query_one(f"#field-{key}").value = value
        await pilot.pause(0.5)
        saved.append(app.save_screenshot("h100-setup.svg", str(shots)))
        await pilot.press("r")
        run = app.get_screen("run")
        while not run.run_state.total or run.run_state.done < run.run_state.total // 2:
            await pilot.pause(0.25)
        await pilot.pause(1.0)
        saved.append(app.save_screenshot("h100-run.svg", str(shots)))
        while app.current_mode != "results":
            await pilot.pause(0.25)
        await pilot.pause(1.5)
        saved.append(app.save_screenshot("h100-results.svg", str(shots)))
        await pilot.press("w")
        await pilot.pause(0.3)
        app.screen.query_one("#dialog-input").value = "h100-app-qwen3-8b"
        await pilot.press("enter")
        while not app.store.list():
            await pilot.pause(0.2)
        await pilot.press("q")
    return {"seconds": round(time.perf_counter() - started, 1), "screenshots": saved}


def pack(work: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(destination / "proof.tgz", "w:gz") as tar:
        tar.add(work / "out", arcname="out")
    for name in ("figures.json", "log.txt"):
        source = work / "out" / name
        if source.is_file():
            (destination / name).write_bytes(source.read_bytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "run", "wait"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/proof"))
    parser.add_argument("--src", type=Path, default=REPO / ".gpu" / "llama-src.tgz")
    parser.add_argument("--vulkan", type=Path, default=REPO / ".gpu" / "vulkan-bin.txz")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--max", type=float, default=560)
    parser.add_argument("--pack", type=Path)
    parser.add_argument("--bench-args", default="", help="extra llamaduel bench options, space-separated")
    options = parser.parse_args()
    options.work.mkdir(parents=True, exist_ok=True)
    if options.action == "start":
        log = open(options.work / "pipeline.out", "a")
        subprocess.Popen([sys.executable, __file__, "run", "--work", str(options.work),
                          "--src", str(options.src), "--vulkan", str(options.vulkan),
                          "--stages", options.stages, "--bench-args", options.bench_args],
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
        print(f"started; follow with: {sys.argv[0]} wait --work {options.work}")
        return 0
    if options.action == "run":
        Pipeline(options.work, options.src, options.vulkan, options.stages.split(","),
                 options.bench_args.split()).main()
        return 0
    deadline = time.monotonic() + options.max
    log = options.work / "out" / "log.txt"
    shown = 0
    while time.monotonic() < deadline:
        text = log.read_text() if log.is_file() else ""
        if len(text) > shown:
            print(text[shown:], end="", flush=True)
            shown = len(text)
        if "== done" in text:
            break
        time.sleep(2)
    if options.pack:
        pack(options.work, options.pack)
    return 0


if __name__ == "__main__":
    sys.exit(main())
