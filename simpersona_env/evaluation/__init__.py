"""Evaluation: how closely a simulated buyer population matches the real one.

Example:
    >>> from simpersona_env.evaluation import evaluate_population, goal_benchmark, write_report
"""

from simpersona_env.evaluation.alignment import (
    AlignmentResult,
    Estimate,
    alignment_score,
    funnel_alignment,
    rate_alignment,
)

__all__ = [
    # alignment math
    "AlignmentResult", "Estimate", "alignment_score", "funnel_alignment", "rate_alignment",
    # the evaluations
    "evaluate_population", "heldout_protocol", "pick_heldout_merchants", "type_fidelity",
    "type_profiles", "ab_test", "goal_benchmark",
    # the report
    "write_report", "headline",
]

_LAZY = {
    "evaluate_population": "population", "heldout_protocol": "population",
    "pick_heldout_merchants": "population", "type_fidelity": "population",
    "type_profiles": "population", "ab_test": "population", "goal_benchmark": "goal",
    "write_report": "report", "headline": "report",
}


def __getattr__(name: str):  # polars, matplotlib and the runner load on first use
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"simpersona_env.evaluation.{_LAZY[name]}"), name)
    raise AttributeError(name)
