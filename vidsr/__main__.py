"""`python -m vidsr` is the `vidsr` command."""

from vidsr.cli.app import main

main()
