"""The names a taxonomy is written in: its groupings, kinds of region evidence and roll-ups.

Kept apart from the taxonomy itself so that the phrase matcher, the taxonomy file reader and the
analyses share them without importing each other.
"""

from __future__ import annotations

GROUPINGS = ("region", "genre", "instrument", "language", "vocal_gender")
UNSPECIFIED = "unspecified"
# Kinds of region evidence: "explicit" names a culture, country, language, instrument or tradition;
# "origin" is a globalized genre mapped to where it began (rock -> North America and Europe).
REGION_BASES = ("explicit", "origin")
REGION_RULES = ("explicit", "origin", "both")  # which kinds of region evidence count
ROLLUPS = ("global_north", "global_south", "mixed", UNSPECIFIED)


class TaxonomyError(ValueError):
    """The taxonomy file is inconsistent; the message names the entry."""
