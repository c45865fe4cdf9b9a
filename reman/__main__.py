"""`python -m reman`: the same as the `reman` console script."""

from reman.cli import main

main()
