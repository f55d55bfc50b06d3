"""Profile fields are data, never markup or code: hostile paths in launch commands and
llama-swap blocks, and control characters wherever they are printed."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess

import yaml

from backends.text import printable, shell_join
from profiles.exporters import launch_command, llama_swap_config, to_markdown
from tests.test_profile_store import _sample_profile

HOSTILE = [
    "/models/new\nline: {x: [1]} # not a comment.gguf",
    "/models/it's \"quoted\" $(rm -rf ~) `x` ;|&.gguf",
    "/models/esc\x1b[31mred\x07bell\rreturn.gguf",
    "/models/ünïcødé 模型.gguf",
]


def with_paths(model: str, build_path: str):
    profile = _sample_profile()
    builds = tuple(dataclasses.replace(b, path=build_path) for b in profile.builds)
    return dataclasses.replace(profile, builds=builds,
                               model=dataclasses.replace(profile.model, path=model, file_name=model))


def test_a_hostile_model_path_makes_a_llama_swap_block_with_exactly_that_path():
    for model in HOSTILE:
        block = llama_swap_config(with_paths(model, "/opt/llama #1: {b}"), ["short_dense"])
        parsed = yaml.safe_load(block)
        assert list(parsed) == ["models"] and len(parsed["models"]) == 1, block
        [entry] = parsed["models"].values()
        argv = shlex.split(entry["cmd"])
        assert argv[argv.index("-m") + 1] == model
        assert argv[0] == "/opt/llama #1: {b}/llama-server"
        assert "${PORT}" in argv


def test_a_shown_launch_command_is_exactly_what_runs_when_pasted():
    for model in HOSTILE:
        command = launch_command(with_paths(model, "/opt/llama.cpp; echo oops"), "short_dense")
        shown = command.display
        assert "\x1b" not in shown and "\x07" not in shown  # escaped for the screen...
        # ...and bash turns the pasted text back into exactly the argument list.
        out = subprocess.run(["bash", "-c", 'printf "%s\\0" ' + shown], capture_output=True, check=True)
        assert out.stdout.decode().split("\0")[:-1] == list(command.argv)
        assert shell_join(command.argv) == shown


def test_control_characters_are_escaped_in_exports_and_lines():
    profile = with_paths(HOSTILE[2], "/opt/b")
    markdown = to_markdown(profile.recommendation, title=profile.model.path)
    assert "\x1b" not in markdown and "\x07" not in markdown and "\r" not in markdown
    assert printable("a\x1bb\x9bc") == "a\\x1bb\\x9bc"
