"""Does a metric measure what a listener hears? On every run it must rank the references the way a
listener would: the original > Opus at the codec's bitrate > noise shaped to the clip's mel-band energies
> another clip. A metric that fails is reported as failing, and not as the headline.
"""

from __future__ import annotations

from typing import Any

from cadenza.codec.metrics import rank_value

REFERENCE_ORDER = ("original", "opus", "shaped_noise", "another_clip")  # best first
HEADLINE_CANDIDATES = ("chroma_similarity", "flatness_ratio", "log_mel_l1")  # the first that passes is the headline


def check_order(metric: str, summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """summaries: reference -> that reference's aggregate of `metric`. passes is None when a reference has
    no value (e.g. f0 agreement on a run with no clip of clear pitch)."""
    values = {ref: rank_value(metric, summaries[ref]) for ref in REFERENCE_ORDER if ref in summaries}
    if len(values) < len(REFERENCE_ORDER) or any(v != v for v in values.values()):  # v != v: nan
        return {"passes": None, "why": "not every reference has a value",
                "rank_values": {ref: None if v != v else v for ref, v in values.items()}}
    ranked = [values[ref] for ref in REFERENCE_ORDER]
    broken = [f"{a} !> {b}" for a, b, va, vb in zip(REFERENCE_ORDER, REFERENCE_ORDER[1:], ranked, ranked[1:],
                                                  strict=False) if not va > vb]
    return {"passes": not broken, "why": "; ".join(broken), "rank_values": values}


def validity(metrics: list[str], by_reference: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """by_reference: reference -> metric -> aggregate. Per metric the order check, and the headline."""
    checks = {m: check_order(m, {ref: s[m] for ref, s in by_reference.items() if m in s}) for m in metrics}
    headline = next((m for m in HEADLINE_CANDIDATES if checks.get(m, {}).get("passes")), None)
    return {"order": " > ".join(REFERENCE_ORDER), "metrics": checks, "headline": headline,
            "rank_values_are": "the aggregate, larger is better: the mean, negated for distances; for "
                               "flatness_ratio minus off_by, the factor each clip is off either way"}
