"""`python -m adownload`: the command line, as the `adownload` script runs it."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
