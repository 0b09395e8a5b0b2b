"""`python -m tuneforge`: the same as the `tuneforge` command."""

from tuneforge.cli.app import main

main()
