"""`python -m kbchat` runs the command line."""

from kbchat.cli.main import main

main()
