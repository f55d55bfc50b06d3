"""The tune phase: each contender calibrated on a short probe before the duel.

    grid.py        free settings, the probe (the sweep's largest prompt at its middle depth), budgets
    candidates.py  one contender's grid: the values, what cannot fit in memory, llama.cpp's own fit
    search.py      successive halving over journalled probes (rebuilt from events on resume)
    phase.py       the phase inside a sweep: probes through llama-bench, turns, the budget, the defaults
    estimate.py    how long the phase adds to a run, for the plan's estimate
    settings.py    a contender with a candidate's settings (its own replaced, never repeated)
    words.py       tune events in one line each

Its events live with the journal's (``backends.journal.tune``); what tuning was worth is
``profiles.tuning``.
"""
