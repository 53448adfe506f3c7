"""``python -m brainuad`` runs the command line."""

from brainuad.cli import main

main()
