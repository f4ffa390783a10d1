"""Verify a .tflite model (and its v2 manifest) against ESPHome's micro_wake_word; see mww-verify --help."""

from mww.cli.verify import main

raise SystemExit(main())
