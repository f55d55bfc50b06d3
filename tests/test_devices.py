"""Contenders beyond builds: one binary on two devices, a split across a local GPU and an
RPC server, and an RPC server that dies mid-sweep, all with the real combined build
(GGML_BACKEND_DL: CPU and Vulkan as loadable modules, GGML_RPC)."""

from __future__ import annotations

import contextlib

import psutil
import pytest

from backends.builds import probe_build
from backends.contenders import (
    ContenderError,
    make_contenders,
    parse_device_arg,
    parse_rpc_arg,
    parse_set_arg,
    split_variants,
)
from backends.journal.sweep import PointDecided, PointFailed, ResultReceived, SweepStarted
from backends.remote.rpc import LocalRpcServer, endpoint_alive
from backends.sweep import RunRequest, SweepSpec, run_sweep

pytestmark = pytest.mark.toolchain

SPEC = SweepSpec(name="tiny", prompts=(32,), gens=(8,), depths=(0,), repetitions=2, threads=1)


@pytest.fixture(scope="module")
def combined(combined_bin):
    build = probe_build(combined_bin, "combined")
    assert build.runnable, build.problem
    return build


def test_the_combined_build_lists_its_backends_and_what_it_supports(combined):
    assert [d.name for d in combined.devices] == ["Vulkan0"]
    assert combined.supports("-dev") and combined.supports("--rpc")
    assert set(combined.split_modes) == {"none", "layer", "row", "tensor"}
    assert combined.rpc_server is not None and combined.server is not None


def test_contender_arguments_are_checked_before_anything_runs(combined):
    with pytest.raises(ContenderError, match=r"no device 'ROCm0'.*Vulkan0"):
        make_contenders([combined], devices=dict([parse_device_arg("x=ROCm0")]))
    with pytest.raises(ContenderError, match="write a tensor split as 3/1"):
        make_contenders([combined], settings=dict([parse_set_arg("x=-sm layer -ts 1,1")]))
    with pytest.raises(ContenderError, match="-sm diagonal is not one of"):
        make_contenders([combined], settings=dict([parse_set_arg("x=-sm diagonal")]))
    with pytest.raises(ContenderError, match="has no --frobnicate"):
        make_contenders([combined], settings=dict([parse_set_arg("x=--frobnicate 1")]))
    with pytest.raises(ContenderError, match="belongs to the grid"):
        make_contenders([combined], settings=dict([parse_set_arg("x=-r 3")]))
    with pytest.raises(ContenderError, match="is not HOST:PORT"):
        parse_rpc_arg("x=localhost")
    variants = split_variants(combined, ["Vulkan0", "Vulkan1"])
    assert variants["2x-row"] == (("Vulkan0", "Vulkan1"), ("-sm", "row", "-ts", "1/1"))
    assert variants["2x-layer-3:1"][1] == ("-sm", "layer", "-ts", "3/1")


async def test_one_binary_on_the_cpu_against_the_same_binary_on_vulkan(combined, tiny_llama, tmp_path):
    contenders = make_contenders([combined], devices=dict(
        [parse_device_arg("cpu=none"), parse_device_arg("vk=Vulkan0")]))
    assert [c.name for c in contenders] == ["cpu", "vk"]
    events = [e async for e in run_sweep(RunRequest(contenders, tiny_llama, SPEC, run_dir=tmp_path, granularity="point"))]
    start = events[0]
    assert isinstance(start, SweepStarted)
    assert start.contenders["cpu"]["devices"] == [] and start.contenders["vk"]["devices"] == ["Vulkan0"]
    results = {(e.build, e.result.point.name): e.result for e in events if isinstance(e, ResultReceived)}
    assert {r.raw["devices"] for (b, _), r in results.items() if b == "cpu"} == {"none"}
    assert {r.raw["devices"] for (b, _), r in results.items() if b == "vk"} == {"Vulkan0"}
    # The same commit on two devices: the CPU is far ahead of the software renderer.
    assert results[("cpu", "tg8")].avg_ts > 3 * results[("vk", "tg8")].avg_ts
    argv = next(e.argv for e in events if hasattr(e, "argv") and e.build == "vk")
    assert argv[argv.index("-dev") + 1] == "Vulkan0"


async def test_a_split_across_vulkan_and_a_local_rpc_server(combined, tiny_llama, tmp_path):
    server = LocalRpcServer(combined, "CPU", threads=1)
    contenders = make_contenders(
        [combined],
        devices={"even": ("Vulkan0", "RPC0"), "uneven": ("Vulkan0", "RPC0")},
        rpc={"even": (server.endpoint,), "uneven": (server.endpoint,)},
        settings={"even": ("-sm", "layer", "-ts", "1/1"), "uneven": ("-sm", "layer", "-ts", "3/1")})
    events = [e async for e in run_sweep(RunRequest(contenders, tiny_llama, SPEC.with_changes(gens=()), run_dir=tmp_path, granularity="point", local_rpc=[server]))]
    results = {e.build: e.result for e in events if isinstance(e, ResultReceived)}
    assert results["even"].raw["tensor_split"] == "1.00/1.00"
    assert results["uneven"].raw["tensor_split"] == "3.00/1.00"
    assert all(r.raw["devices"] == "Vulkan0/RPC0" and "RPC" in r.raw["backends"]
               for r in results.values())
    assert not endpoint_alive(server.endpoint)  # stopped with the sweep
    assert not _alive("ggml-rpc-server")


async def test_an_rpc_server_killed_mid_sweep_fails_that_point_and_nothing_is_left(
        combined, tiny_llama, tmp_path):
    server = LocalRpcServer(combined, "CPU", threads=1)
    [contender] = make_contenders([combined], devices={"split": ("Vulkan0", "RPC0")},
                                  rpc={"split": (server.endpoint,)})
    spec = SPEC.with_changes(depths=(0, 64))
    events = []
    sweep = run_sweep(RunRequest([contender], tiny_llama, spec, run_dir=tmp_path, granularity="point", local_rpc=[server]))
    async with contextlib.aclosing(sweep) as stream:
        async for event in stream:
            events.append(event)
            if isinstance(event, ResultReceived) and server.tool is not None and server.tool.running:
                psutil.Process(server.tool.pid).kill()  # the second box goes away
    failures = [e for e in events if isinstance(e, PointFailed)]
    assert failures and all(f"RPC server {server.endpoint} closed the connection" in f.reason
                            for f in failures)
    # Every point has an outcome: the first result, then a failure per point after it.
    assert len([e for e in events if isinstance(e, PointDecided)]) == len(spec.points())
    assert not _alive("ggml-rpc-server") and not _alive("llama-bench")


def _alive(name: str) -> bool:
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if name in process.name() and process.status() != psutil.STATUS_ZOMBIE:
                return True
    return False
