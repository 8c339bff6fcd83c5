"""vadx plugin ``latent-pred``: Li, Leroux & Simoens (CVIU 2021), decoupled appearance and
motion learning, anomaly score = latent-code prediction error (Z-MSE).

Modules: ``model`` (U-Net encoder/decoder with previous-frame skips, Conv3D motion model),
``preprocess`` (resize + background subtraction), ``training`` (two-stage loss of eq. 1),
``detector`` (the :class:`LatentPred` vadx detector, streaming with a code cache).
"""

import vadx
from vadx_latent_pred.detector import LatentPred

__all__ = ["LatentPred"]


@vadx.hookimpl
def vadx_register_detectors(register):
    register(LatentPred)
