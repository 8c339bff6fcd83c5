"""vadx plugin ``sparse_rnn``: Luo et al.'s temporally-coherent sparse coding (``tsc``) and its
stacked-RNN auto-encoder (``srnn-ae``), on spatial and temporal pyramid CNN features.

Modules: ``features`` (backbone, spatial pyramid pooling, temporal max), ``coding`` (similarity,
dictionary initialisation, training batches), ``tsc`` and ``srnn_ae`` (one stream's model and its
training), ``detector`` (the two vadx detectors; design choices in its docstring).
"""

import vadx
from vadx_sparse_rnn.detector import SRNNAE, TSC

__all__ = ["SRNNAE", "TSC"]


@vadx.hookimpl
def vadx_register_detectors(register):
    register(TSC)
    register(SRNNAE)
