#!/usr/bin/env python3
"""Dead code in backends/, profiles/ and tui/: functions, classes, methods, properties,
imports and unreachable code that nothing uses (vulture, configured in pyproject.toml).

Unused variables and attributes are left out: most are fields of frozen records written to
journals, profiles and JSON through the codec, read by name and never by attribute (ruff
reports unused local variables already). What must stay though unused by name is listed,
with why, in scripts/vulture_whitelist.py. The exit code is 1 when anything is reported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIELDS = ("unused variable", "unused attribute")


def main() -> int:
    found = subprocess.run([sys.executable, "-m", "vulture"], cwd=REPO, capture_output=True, text=True)
    if found.returncode not in (0, 3):  # 3: vulture found something; anything else: it failed
        print(found.stderr.strip() or f"vulture failed ({found.returncode})")
        return found.returncode
    dead = [line for line in found.stdout.splitlines() if line and not any(f in line for f in FIELDS)]
    for line in dead:
        print(line)
    return 1 if dead else 0


if __name__ == "__main__":
    sys.exit(main())
