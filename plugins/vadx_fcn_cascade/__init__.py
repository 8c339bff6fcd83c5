"""vadx detector plugin ``fcn-cascade``: Sabokrou et al.'s Deep-Anomaly (FCN + cascaded Gaussians +
receptive-field roll-back). See :class:`vadx_fcn_cascade.detector.FCNCascade`."""

import vadx
from vadx_fcn_cascade.detector import FCNCascade

__all__ = ["FCNCascade"]


@vadx.hookimpl
def vadx_register_detectors(register):
    register(FCNCascade)
