"""``python -m quarry_core.cli``: the same as the ``quarry`` console script."""

from quarry_core.cli import main

main()
