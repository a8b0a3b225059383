"""Evaluation: how closely a simulated buyer population matches the real one."""

from simpersona_env.evaluation.alignment import (
    AlignmentResult,
    Estimate,
    alignment_score,
    funnel_alignment,
    rate_alignment,
)

__all__ = ["AlignmentResult", "Estimate", "alignment_score", "funnel_alignment", "rate_alignment"]
