"""Profiles saved by earlier versions load and show, untouched; fresh ones round-trip exactly."""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from pathlib import Path

import pytest

from profiles.model import with_recommendation
from profiles.outcome import Crossover, PairComparison
from profiles.store import ProfileError, ProfileStore, decode, profile_from_toml, profile_to_toml
from tui.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "profiles" / "examples"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.toml"))


def test_there_are_examples():
    assert len(NAMES) >= 4


@pytest.mark.parametrize("name", NAMES)
def test_every_example_shows_and_is_never_rewritten(name, capsys):
    path = EXAMPLES / f"{name}.toml"
    before = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    assert main(["profiles", "--store", str(EXAMPLES), "show", name]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "This verdict was saved by an older llamaduel" in captured.out
    assert "workload" in captured.out and "winner" in captured.out
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before
    profile = ProfileStore(EXAMPLES).load(name)
    assert profile.recommendation is not None
    for verdict in profile.recommendation.verdicts:
        for pair in verdict.comparisons:
            assert pair.ratio == pytest.approx(1.0 + pair.margin_pct / 100.0)
            for cell in pair.cells:
                assert cell.ratio == pytest.approx(cell.challenger_ts / cell.baseline_ts, rel=1e-6)
    assert any(p.endswith(".ratio") for p in profile.lacking)


@pytest.mark.parametrize("name", NAMES)
def test_a_fresh_save_reads_back_equal_and_says_nothing_of_older_versions(name, tmp_path, capsys):
    old = ProfileStore(EXAMPLES).load(name)
    fresh = with_recommendation(dataclasses.replace(old, lacking=()))
    store = ProfileStore(tmp_path)
    store.save(fresh)
    back = store.load(fresh.name)
    assert back == fresh and back.lacking == ()
    assert profile_from_toml(profile_to_toml(old)) == old  # an old one saved again: equal too
    assert "lacking" not in store.path_for(fresh.name).read_text()
    assert main(["profiles", "--store", str(tmp_path), "show", fresh.name]) == 0
    out = capsys.readouterr().out
    assert "older llamaduel" not in out
    assert fresh.recommendation is not None and fresh.recommendation.summary[0] in out


def test_an_old_crossover_gets_its_sentence_and_no_guessed_workload():
    old = {"model": "m.gguf", "phase": "tg", "axis": "depth", "low": 512, "high": 8192, "at": 3000.0,
           "leader_before": "rocm", "leader_after": "vulkan", "significant": True}
    lacking: list[str] = []
    crossover = decode(Crossover, old, "x", lacking)
    assert crossover.sentence.startswith("Generation on m.gguf: the lead passes from rocm to vulkan between")
    assert crossover.workload == ""
    assert {"x.sentence", "x.workload"} <= set(lacking)


def test_a_cells_ratio_comes_from_its_two_speeds_and_a_pairs_from_its_margin():
    cells = [{"model": "m", "test": "tg128", "context": 128, "baseline_ts": 10.0, "challenger_ts": 20.0},
             {"model": "m", "test": "tg128 @ d4096", "context": 4224, "baseline_ts": 10.0, "challenger_ts": 5.0}]
    pair = decode(PairComparison, {"leader": "a", "other": "b", "margin_pct": 25.0, "cells": cells,
                                   "significant_for": 1, "significant_against": 1})
    assert pair.ratio == 1.25 and [c.ratio for c in pair.cells] == [2.0, 0.5]
    data = tomllib.loads('leader = "a"\nother = "b"\nsignificant_for = 0\nsignificant_against = 0\n')
    with pytest.raises(ProfileError, match=r"^ratio: missing$"):
        decode(PairComparison, {**data, "cells": cells})


def test_a_field_that_cannot_be_derived_is_still_one_clear_line(tmp_path, capsys):
    text = (EXAMPLES / f"{NAMES[0]}.toml").read_text()
    broken = text.replace("\nleader = ", "\nleeder = ", 1)
    (tmp_path / "broken.toml").write_text(broken)
    assert main(["profiles", "--store", str(tmp_path), "show", "broken"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "comparisons[0].leader: missing" in err
