"""The kerasbrain demo as a script: pretrain on a large synthetic multi-site cohort, then
compare fine-tuning strategies on a small cohort from an unseen site.

    python applications/demo.py --out demo-output [--quick]

Same as ``kerasbrain demo``. The images are synthetic (kerasbrain.datasets.synthetic).
"""

import argparse
import sys

from kerasbrain.commands import demo

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_arguments(parser)
    sys.exit(demo.run(parser.parse_args()))
