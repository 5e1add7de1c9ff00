"""`python -m registry` runs the same command line as `registry`."""

from cli.main import main

main()
