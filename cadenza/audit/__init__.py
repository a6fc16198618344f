"""The cultural-bias audit of MusicCaps: taxonomy, statistics, findings, plots, reports, weights, survival.

Code outside this package uses only the names below; the modules inside are the audit's own.
"""

from cadenza.audit.chain_report import ChainInputError, write_chain_report
from cadenza.audit.groupings import TaxonomyError
from cadenza.audit.run import AuditConfig, run_audit
from cadenza.audit.stats import benjamini_hochberg

__all__ = [
    "AuditConfig",
    "ChainInputError",
    "TaxonomyError",
    "benjamini_hochberg",
    "run_audit",
    "write_chain_report",
]
