"""What ``bench`` needs for builds on other hosts: the model there and each host's telemetry."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from backends.builds import BuildInfo
from backends.models import ModelInfo
from tui.cli import CommandError
from tui.cli.common import say

if TYPE_CHECKING:
    from backends.telemetry.model import TelemetrySource


def host_models(builds: Sequence[BuildInfo], model: Path, model_on: Sequence[str],
                here: ModelInfo | None) -> tuple[ModelInfo, dict[str, str]]:
    """The model for the sweep (this machine's copy when a build runs here, else the first
    host's) and its absolute path on each host, read there (only the header travels).
    One-line CommandError for a host without a usable copy."""
    from backends.remote.probe import read_remote_model

    paths: dict[str, str] = {}
    for text in model_on:
        host, sep, path = text.partition("=")
        if not sep or not host.strip() or not path.strip():
            raise CommandError(f"--model-on {text!r}: use --model-on HOST=PATH")
        paths[host.strip()] = path.strip()
    hosts = list(dict.fromkeys(b.host for b in builds if b.host))
    unknown = sorted(set(paths) - set(hosts))
    if unknown:
        raise CommandError(f"--model-on {unknown[0]}=...: no --build runs on {unknown[0]}")
    chosen = here
    resolved: dict[str, str] = {}
    for host in hosts:
        there = read_remote_model(host, paths.get(host, str(model)))
        if there.problem:
            raise CommandError(f"model on {host} ({paths.get(host, model)}): {there.problem}")
        resolved[host] = str(there.path)
        if chosen is None:
            chosen = there
        elif _identity(chosen) != _identity(there):
            say(f"note: the model on {host} differs from the one the other builds use "
                f"({_describe(there)} against {_describe(chosen)})")
    assert chosen is not None
    return chosen, resolved


def _identity(model: ModelInfo) -> tuple[str | None, int | None, str | None, int]:
    return (model.architecture, model.parameters, model.quant, model.size_bytes)


def _describe(model: ModelInfo) -> str:
    return f"{model.architecture} {model.quant}, {model.size_bytes} bytes"


def host_telemetry(builds: Sequence[BuildInfo]) -> dict[str, TelemetrySource]:
    """A RemoteTelemetry for every host a build runs on."""
    from backends.remote.telemetry import RemoteTelemetry

    return {host: RemoteTelemetry(host) for host in dict.fromkeys(b.host for b in builds if b.host)}
