"""vadx's custom operators (torch.ops.vadx.*) with documented Python wrappers, and the plain-PyTorch
helpers that go with them.

Compiled ops (C++/CUDA, called through their wrappers): accumulator_score, mahalanobis_cascade,
rollback_coverage, sista (with its backward, torch.ops.vadx.sista_backward). Plain PyTorch:
fit_gaussian, receptive_field, reconstruction_error, tsc_dictionary_step. The ops' fake kernels are
registered by vadx.ops._fake, the module their C++ schemas name (m.set_python_module).
"""

from vadx.ops import _fake  # noqa: F401  (registers the fake kernels first)
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
