"""vadx plugin ``attribute-knn``: object-centric velocity and appearance k-NN densities (after
Reiss & Hoshen's attribute-based representation)."""

import vadx

from .detector import AttributeKNN

__all__ = ["AttributeKNN"]


@vadx.hookimpl
def vadx_register_detectors(register):
    register(AttributeKNN)
