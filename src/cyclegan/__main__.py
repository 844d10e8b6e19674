"""``python -m cyclegan`` (and ``torchrun -m cyclegan``) runs the CLI."""

import sys

from cyclegan.cli import main

sys.exit(main())
