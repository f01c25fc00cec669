"""`python -m benchmarks`: see benchmarks/README.md."""

import sys

from .main import main

sys.exit(main())
