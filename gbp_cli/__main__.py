"""Lets `python -m gbp_cli` behave exactly like the `gbp` script."""

from gbp_cli.cli.main import main

main()
