"""`python -m vidsr` is the `vidsr` command."""

from vidsr.cli.entry import main

main()
