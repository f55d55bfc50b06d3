#!/usr/bin/env python3
"""Install what the tests need and run the whole test suite.

    python3 scripts/run_tests.py [pytest arguments]

Installs llamaduel with its test extras, builds (or reuses from the cache outside the
repository) the real llama.cpp CPU and Vulkan-on-lavapipe tools, makes sure tmux (for the
terminal test) and OpenSSH's sshd (for builds on other hosts, started by the tests on
127.0.0.1 with their own keys and config) are there, then runs pytest on two workers.
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
        step(env_args + ["apt-get", "update", "-qq"])
        step(env_args + ["apt-get", "install", "-y", "-qq", *missing])
    step([sys.executable, "scripts/build_llamacpp.py"])
    pytest = [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", *sys.argv[1:]]
    print("+ " + " ".join(pytest), flush=True)
    return subprocess.run(pytest, cwd=REPO).returncode


if __name__ == "__main__":
    sys.exit(main())
