"""`python -m teachwhy` runs the command line."""

from teachwhy.cli import main

main()
