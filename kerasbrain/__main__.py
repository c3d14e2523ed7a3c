import sys

from kerasbrain.cli import main

sys.exit(main())
