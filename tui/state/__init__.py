"""Display state, free of widgets: frozen snapshots folded from events by pure functions.

``run`` folds a sweep (and the correctness check before it), ``race`` a race, ``telemetry``
the telemetry ticks; ``grid`` turns the Setup form's text into a sweep and back; ``format``
writes rates, depths and durations the one way the app shows them.
"""
