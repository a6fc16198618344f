"""MusicCaps metadata: schema (with the subsets), CSV loading and validation, AudioSet ontology."""

from cadenza.musiccaps.csvload import load_musiccaps, parse_musiccaps
from cadenza.musiccaps.ontology import Ontology, load_ontology
from cadenza.musiccaps.schema import ClipRecord, Reject, ValidationResult

__all__ = [
    "ClipRecord",
    "Ontology",
    "Reject",
    "ValidationResult",
    "load_musiccaps",
    "load_ontology",
    "parse_musiccaps",
]
