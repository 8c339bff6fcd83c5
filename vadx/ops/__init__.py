"""vadx's custom operators (torch.ops.vadx.*) with documented Python wrappers."""

from vadx.ops.accumulator_score import accumulator_score
from vadx.ops.mahalanobis_cascade import fit_gaussian, mahalanobis_cascade
from vadx.ops.rollback_coverage import receptive_field, rollback_coverage
from vadx.ops.sista import reconstruction_error, sista, tsc_dictionary_step

__all__ = [
    "accumulator_score",
    "fit_gaussian",
    "mahalanobis_cascade",
    "receptive_field",
    "reconstruction_error",
    "rollback_coverage",
    "sista",
    "tsc_dictionary_step",
]
