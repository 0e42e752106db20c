"""Entry point of ``python -m tdyn`` and the ``tdyn`` console script."""

import sys

from tdyn.cli import main

if __name__ == "__main__":
    sys.exit(main())
