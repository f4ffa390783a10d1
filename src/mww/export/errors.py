"""The error of the export stage, raised by the conversion and by the manifest it writes."""

from __future__ import annotations

from mww.errors import MwwError


class ExportError(MwwError):
    """An export that cannot proceed, explained in one paragraph (file, likely cause, what to do)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
