"""vadx plugin `two-stream` (Petrocchi, Giorgi, Cimino): RGB + optical-flow CNN streams, a
bag-of-objects from a pluggable object detector, and the Sigmoidal Anomaly Score."""

import vadx

from .detector import TwoStream

__all__ = ["TwoStream"]


@vadx.hookimpl
def vadx_register_detectors(register):
    register(TwoStream)
