"""The record of a run: the journal every run writes and the events of every kind in it.

    codec.py    msgspec encoding of frozen dataclasses; the tagged-record Registry
    journal.py  the run journal (one writer, repair, read with line numbers, run ids)
    sweep.py    a llama-bench sweep's events (TestPoint, BenchResult, ResultReceived, ...)
    race.py     a completion race's spec and events
    serve.py    a server duel's events and per-level figures
    soak.py     a soak's events (servers up, crashes, hangs, probes, wrong answers, windows)
    check.py    a correctness check's results and events

Sweeps, races, checks and server duels import from here; nothing here imports them. The
package imports nothing eagerly, so ``backends.journal.codec`` stays cheap for any caller.
"""
