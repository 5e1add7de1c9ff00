"""`python -m registry` runs the same command line as `registry`."""

from registry.cli import main

main()
