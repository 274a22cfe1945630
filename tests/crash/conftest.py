# The crash tests reuse the integration harness (tests/integration/tsubame_harness.py).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from tsubame_harness import base_dir, make_daemon, module_daemon, tsubame  # noqa: E402,F401
