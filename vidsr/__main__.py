"""`python -m vidsr` is the `vidsr` command."""

from vidsr.cli import main

main()
