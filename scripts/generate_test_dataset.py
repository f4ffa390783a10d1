"""Create a small synthetic dataset (default ./dataset) for trying the pipeline; see mww-generate --help."""

from mww.cli.generate import main

if __name__ == "__main__":  # worker processes re-import this file: generate only in the parent
    raise SystemExit(main())
