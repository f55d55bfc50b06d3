"""Journals written before the record of a run moved to backends/journal/ still decode.

``tests/data/journal-every-kind.jsonl`` holds one line of every record type the journal
knew (sweep, check, race and server events), written by the code as it was before the
move: every line must decode, and encode back to the very same bytes.
"""

from __future__ import annotations

from pathlib import Path

from backends.journal.journal import RECORDS, read_journal

DATA = Path(__file__).parent / "data" / "journal-every-kind.jsonl"


def test_a_journal_of_every_kind_decodes_and_encodes_back_byte_for_byte() -> None:
    journal = read_journal(DATA)
    lines = DATA.read_bytes().splitlines()
    assert not journal.problems
    assert len(journal) == len(lines) == 37
    for line, event in zip(lines, journal, strict=True):
        assert RECORDS.encode(event) == line
    kinds = {type(event).__module__ for event in journal}
    assert kinds == {"backends.journal.sweep", "backends.journal.check",
                     "backends.journal.race", "backends.journal.serve"}


def test_every_record_type_of_that_journal_is_still_registered() -> None:
    names = {line.split(b'"')[3].decode() for line in DATA.read_bytes().splitlines()}
    assert names <= set(RECORDS.names)
