"""``python -m mixtures``: the ``mixtures`` command (see :mod:`mixtures.cli`)."""

import sys

from mixtures.cli import main

if __name__ == "__main__":
    sys.exit(main())
