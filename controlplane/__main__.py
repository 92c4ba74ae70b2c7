"""``python -m controlplane`` = the ``controlplane`` command."""

from controlplane.cli import main

main()
