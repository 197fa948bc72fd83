"""`python -m kbchat` runs the command line."""

from kbchat.cli import main

main()
