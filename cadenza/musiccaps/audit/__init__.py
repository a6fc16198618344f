"""The cultural-bias audit of MusicCaps: taxonomy, statistics, findings, plots, reports, weights, survival.

Code outside this package uses only the names below; the modules inside are the audit's own.
"""

from cadenza.musiccaps.audit.chain_report import ChainInputError, write_chain_report
from cadenza.musiccaps.audit.groupings import TaxonomyError
from cadenza.musiccaps.audit.run import AuditConfig, load_assignments, run_audit
from cadenza.musiccaps.audit.stats import benjamini_hochberg

__all__ = [
    "AuditConfig",
    "ChainInputError",
    "TaxonomyError",
    "benjamini_hochberg",
    "load_assignments",
    "run_audit",
    "write_chain_report",
]
