"""`python -m fastbptt ...`: the `fastbptt` command, for environments without its script."""
import sys

from fastbptt.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
