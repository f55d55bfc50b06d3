#!/usr/bin/env python3
"""Build the llama.cpp CPU and Vulkan-on-lavapipe toolchain (see backends/tooling/toolchain.py).

Runs from a checkout before llamaduel is installed: the builder uses the standard library only.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.tooling.toolchain import main

if __name__ == "__main__":
    main()
