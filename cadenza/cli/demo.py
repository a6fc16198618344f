"""`cadenza demo`: registered by the stage that owns it."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app (filled in by the stage's implementation)."""
