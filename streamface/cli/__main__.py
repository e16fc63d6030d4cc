"""``python -m streamface.cli``: the ``streamface`` command."""

from streamface.cli import main

main()
