# Fixtures for the integration tests live in tsubame_harness.py (shared with tests/crash).
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tsubame_harness import base_dir, make_daemon, module_daemon, tsubame  # noqa: E402,F401
from delivery_peers import sinks  # noqa: E402,F401
