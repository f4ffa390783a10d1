"""Evaluate a checkpoint or an exported model the way the device runs it (same as mww-evaluate)."""

import sys

from mww.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
