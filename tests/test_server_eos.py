"""A model that always predicts end-of-text first still gives every request its -n tokens.

The model is generated (``backends.tooling.synth``, ``eos_first``): its output weights make the
end-of-text logit win after any prompt. llama-completion shows it stops at once unless
told to ignore end-of-text; the server duel asks for exactly -n tokens (``ignore_eos``)
and gets them at concurrency 1, 2 and 4, warm-up included, on the real CPU build.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from server_helpers import assert_nothing_left, cpu, of, run_duel

from backends.journal.serve import LevelFinished, RequestFailed, RequestFinished, WarmupFailed
from backends.server import DuelSpec, ServerSettings
from backends.tooling.synth import write_tiny_llama

N_GEN = 24
PROMPT = "hello world the model"


@pytest.fixture(scope="module")
def eos_model(tmp_path_factory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "eos-first.gguf", eos_first=True)


@pytest.fixture(scope="module")
def eos_silent(tmp_path_factory) -> Path:
    """End-of-text first, and then tokens that print no text: a big vocabulary of unused
    tokens, as random weights at a real model's vocabulary size give."""
    return write_tiny_llama(tmp_path_factory.mktemp("models") / "eos-silent.gguf", eos_first=True,
                            vocab_size=8192)


def complete(cpu_bin: Path, model: Path, *extra: str) -> str:
    """What llama-completion printed after the prompt, greedy, 16 tokens at most.

    llama.cpp's log thread can lose its last lines when the tool exits (here, in about
    half the runs on a loaded machine): it runs again until its closing performance
    lines show, which the log writes after the answer."""
    for _ in range(10):
        done = subprocess.run(
            [str(cpu_bin / "llama-completion"), "-m", str(model), "-p", PROMPT, "-n", "16",
             "--temp", "0", "-no-cnv", "-t", "1", *extra],
            capture_output=True, text=True, timeout=120, check=True, stdin=subprocess.DEVNULL)
        if "total time =" in done.stderr:
            head, _, answer = done.stdout.partition(PROMPT)
            assert not head.strip(), done.stdout
            return answer
    raise AssertionError(f"llama-completion's output was cut short ten times: {done.stderr[-500:]}")


def test_the_model_stops_at_once_unless_told_to_ignore_end_of_text(cpu_bin, eos_model):
    assert complete(cpu_bin, eos_model).strip() == "[end of text]"  # its first token
    answer = complete(cpu_bin, eos_model, "--ignore-eos")
    assert "[end of text]" not in answer and len(answer.split()) == 16  # one word a token


def duel_gets_every_token(cpu_bin: Path, model: Path, tmp_path: Path, endpoint: str) -> list[object]:
    spec = DuelSpec(concurrency=(1, 2, 4), prompts=(64,), n_gen=N_GEN, requests=8, turns=1,
                    gap=False, settings=ServerSettings(threads=1), endpoint=endpoint)
    events = run_duel([cpu(cpu_bin)], model, spec, tmp_path / "journal.jsonl")
    assert not of(events, WarmupFailed) and not of(events, RequestFailed)
    levels = of(events, LevelFinished)
    assert [lv.summary.level.concurrency for lv in levels] == [1, 2, 4]
    for level in levels:
        s = level.summary
        assert not level.failed and (s.requests, s.errors, s.short) == (8, 0, 0)
        assert s.total_tokens == 8 * N_GEN and s.reason is None
    finished = of(events, RequestFinished)
    assert len(finished) == 24 and all(r.n_gen == N_GEN for r in finished)
    assert all(r.timings["predicted_n"] == N_GEN for r in finished)
    assert all(0 < r.ttft_s <= r.e2e_s for r in finished)
    assert_nothing_left(events)
    return finished


def test_every_request_gets_its_tokens_at_concurrency_1_2_and_4(cpu_bin, eos_model, tmp_path):
    finished = duel_gets_every_token(cpu_bin, eos_model, tmp_path, "chat")
    assert all(sum(r.chunk_tokens) == N_GEN and len(r.chunk_times) > 1 for r in finished)


@pytest.mark.parametrize("endpoint", ["completion", "chat"])
def test_tokens_that_print_no_text_still_count(cpu_bin, eos_silent, tmp_path, endpoint):
    finished = duel_gets_every_token(cpu_bin, eos_silent, tmp_path, endpoint)
    if endpoint == "completion":  # each token streams as its own piece, text or not
        assert all(len(r.chunk_times) == N_GEN for r in finished)
    else:  # chat streams only the tokens with text; the server's timings count the rest
        assert all(sum(r.chunk_tokens) == N_GEN and r.gen_tps for r in finished)
