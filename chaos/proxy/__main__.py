"""Entry point of ``python -m flashlab.chaos.proxy``: runs the command line of `cli`."""

from __future__ import annotations

import sys

from flashlab.chaos.proxy.cli import main

if __name__ == "__main__":
    sys.exit(main())
