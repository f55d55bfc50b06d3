#!/usr/bin/env python3
"""Install what the tests need and run the whole test suite.

    python3 scripts/run_tests.py [pytest arguments]

Installs llamaduel with its test extras, builds (or reuses from the cache outside the
repository) the real llama.cpp CPU, Vulkan-on-lavapipe and combined tools, makes sure tmux
(for the terminal test) and OpenSSH's sshd (for builds on other hosts, started by the tests
on 127.0.0.1 with their own keys and config) are there, runs ruff, mypy (strict on
backends/, profiles/ and tui/), the import-linter contracts and vulture (dead code), then
pytest on two workers.
Processes start from argument lists; the exit code is pytest's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def step(argv: list[str]) -> None:
    print("+ " + " ".join(argv), flush=True)
    subprocess.run(argv, check=True, cwd=REPO)


def main() -> int:
    step([sys.executable, "-m", "pip", "install", "-q", "-e", ".[test]"])
    # tmux for the terminal test, OpenSSH's server for the tests of builds on other hosts.
    missing = [package for package, program in (("tmux", "tmux"), ("openssh-server", "/usr/sbin/sshd"))
               if not shutil.which(program)]
    if missing and shutil.which("apt-get") and os.geteuid() == 0:
        env_args = ["env", "DEBIAN_FRONTEND=noninteractive"]
        step([*env_args, "apt-get", "update", "-qq"])
        step([*env_args, "apt-get", "install", "-y", "-qq", *missing])
    step([sys.executable, "scripts/build_llamacpp.py"])
    # Linters and type checks first (seconds); the tests run whatever they say.
    lint_imports = Path(sys.executable).with_name("lint-imports")
    checks = [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "mypy", "backends", "profiles", "tui"],
        [str(lint_imports) if lint_imports.is_file() else "lint-imports"],
        [sys.executable, "scripts/dead_code.py"],  # vulture: functions, classes, imports nothing uses
    ]
    failed = [argv for argv in checks if check(argv) != 0]
    pytest = [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", *sys.argv[1:]]
    code = check(pytest)
    for argv in failed:
        print(f"failed: {' '.join(argv)}", flush=True)
    return code or (1 if failed else 0)


def check(argv: list[str]) -> int:
    print("+ " + " ".join(argv), flush=True)
    return subprocess.run(argv, cwd=REPO).returncode


if __name__ == "__main__":
    sys.exit(main())
