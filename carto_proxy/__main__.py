"""``python -m carto_proxy``: the ``carto-proxy`` command."""

from __future__ import annotations

import sys

from carto_proxy.cli import main

if __name__ == "__main__":
    sys.exit(main())
