"""What the dead-code check (scripts/dead_code.py) is told to keep, and why.

Not code that runs: names vulture cannot see used. A name that is dead is removed, not
listed here.
"""
# ruff: noqa

# Made by name: tui.screens.factory imports each screen from its module name.
ProfilesScreen
RaceScreen
SetupScreen

# Textual's own hook (ToggleButton draws its box from it); a Protocol's call signature.
_._button
__call__

# Called by the tests and benchmarks, which the check does not read.
_.launch_env  # tests/test_builds.py
_.crit_fraction  # tests/test_telemetry_amd.py
_.over_crit  # tests/test_telemetry_amd.py
write_tiny_moe  # tests/conftest.py, benchmarks/correctness_noise.py
_.failure_count  # tests/test_import_formats.py, tests/test_realdata.py
readme_table  # tests/test_exit_codes.py (the README's exit-code table)
_.sweep_running  # tests/test_app_check.py
overlapping  # tests/test_probe_queue.py (no two timing probes at once)
