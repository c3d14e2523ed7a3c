"""``python -m kerasbrain.config [PATH]``: write the config key tables (default: stdout)."""

import sys

from kerasbrain.config import markdown

if len(sys.argv) > 1:
    with open(sys.argv[1], "w") as handle:
        handle.write(markdown())
else:
    sys.stdout.write(markdown())
