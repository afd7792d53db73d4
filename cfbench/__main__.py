"""`python -m cfbench ...` (and `torchrun ... -m cfbench eval ...`): the command line."""

import sys

from cfbench.cli import main

sys.exit(main())
