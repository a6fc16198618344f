"""What a listener hears of a reconstruction: pitch content kept (chroma similarity), noise added
(spectral flatness ratio), melody kept (f0 agreement, on clips with one clear pitch). Pure numpy/librosa.

The original's features are computed once (`listener_reference`) and compared with each of its
reconstructions: the codec's and the references' (cadenza.codec.references).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cadenza.codec.metrics.chroma import ChromaReference, chroma_reference, chroma_similarity_to
from cadenza.codec.metrics.flatness import FlatnessReference, flatness_ratio_to, flatness_reference
from cadenza.codec.metrics.frames import fit_length
from cadenza.codec.metrics.pitch import PitchTrack, f0_agreement, pitch_track

# "one": 1 is the original; a clip's distance from it is |log ratio| either way
LISTENER_DIRECTION = {"chroma_similarity": "higher", "flatness_ratio": "one", "f0_agreement": "higher"}



@dataclass(frozen=True)
class ListenerReference:
    """An original clip's features, to compare reconstructions with."""

    length: int
    chroma: ChromaReference
    flatness: FlatnessReference
    pitch: PitchTrack


def listener_reference(audio: np.ndarray, sample_rate: int) -> ListenerReference:
    return ListenerReference(len(audio), chroma_reference(audio, sample_rate), flatness_reference(audio, sample_rate),
                             pitch_track(audio, sample_rate))


def listener_metrics(reference: ListenerReference, estimate: np.ndarray, sample_rate: int,
                     estimate_pitch: PitchTrack | None = None) -> dict[str, float | None]:
    """The three metrics for one reconstruction; f0_agreement is None (not applicable) unless the original
    has a clear pitch. `estimate_pitch`: the estimate's track when already known (another original clip)."""
    y = fit_length(estimate, reference.length)
    f0 = None
    if reference.pitch.clear:
        f0 = f0_agreement(reference.pitch, pitch_track(y, sample_rate) if estimate_pitch is None else estimate_pitch)
    return {"chroma_similarity": chroma_similarity_to(reference.chroma, y, sample_rate),
            "flatness_ratio": flatness_ratio_to(reference.flatness, y, sample_rate), "f0_agreement": f0}


def mean_ci(values: list[float]) -> dict[str, float]:
    """Mean with a 95% t interval (the interval is the mean itself for one value)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    n, mean = len(x), float(x.mean()) if len(x) else math.nan
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def aggregate(metric: str, values: list[float | None]) -> dict[str, Any]:
    """A metric over clips, with its 95% CI. flatness_ratio: the geometric mean (CI on the log scale) and
    `off_by`, the geometric mean of each clip's factor off either way (what ranks it: the plain geometric
    mean of another clip's ratios is 1, the clips' ratios cancel). f0_agreement: over the clips with a
    clear pitch, the others counted as not applicable."""
    present = [float(v) for v in values if v is not None and math.isfinite(v)]
    if metric == "f0_agreement":  # None, not NaN, where no clip has a clear pitch: metrics.json stays JSON
        summary = mean_ci(present) if present else {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
        return {**summary, "not_applicable": len(values) - len(present)}
    if metric == "flatness_ratio":
        if not present:
            return {**mean_ci([]), "off_by": math.nan}
        logs = np.log(np.maximum(present, 1e-12))
        ci = mean_ci(list(logs))
        return {"mean": math.exp(ci["mean"]), "ci_low": math.exp(ci["ci_low"]), "ci_high": math.exp(ci["ci_high"]),
                "n": ci["n"], "off_by": float(np.exp(np.abs(logs).mean()))}
    return mean_ci(present)


def rank_value(metric: str, summary: dict[str, Any]) -> float:
    """The aggregate that orders conditions on `metric`, larger is better."""
    from cadenza.codec.losses import METRIC_DIRECTION

    direction = {**METRIC_DIRECTION, **LISTENER_DIRECTION}[metric]
    if summary.get("mean") is None:
        return math.nan
    if direction == "one":
        return -summary["off_by"]
    return summary["mean"] if direction == "higher" else -summary["mean"]
