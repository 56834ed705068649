"""``python -m cnnspec`` runs the command line."""

from .cli import main

main()
