"""vadx plugin ``bg-ensemble``: Jadhav & Inamdar's background removal + multi-feature deep ensemble.

The method, the paper's gaps and the choices made are documented in
:mod:`vadx_bg_ensemble.detector`; the reusable background model is
:mod:`vadx_bg_ensemble.background`.
"""

import vadx
from vadx_bg_ensemble.detector import BgEnsemble

__all__ = ["BgEnsemble"]


@vadx.hookimpl
def vadx_register_detectors(register):
    register(BgEnsemble)
