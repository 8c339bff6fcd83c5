"""Fake (meta) kernels of every torch.ops.vadx op: output shapes, dtypes and devices without
computing values, for torch.compile, torch.library.opcheck, FakeTensorMode and meta tensors.

They are all registered here, by one module (as torchvision registers its ops' fakes in
torchvision._meta_registrations): the C++ schemas name it with ``m.set_python_module`` (see
csrc/python_module.h), so running an op on fake or meta tensors with vadx._C loaded but this
module not imported fails with torch's "you may need to import the 'vadx.ops._fake' Python module"
error, and torch checks that the fakes really come from here. ``import vadx`` imports it.

Each fake checks what its output shapes depend on and, like the C++ checks, that every tensor is
on the first tensor's device (ValueError naming the argument).
"""

from __future__ import annotations

import torch

from vadx.ops._checks import check_same_device
from vadx.ops.rollback_coverage import MAX_OUTPUT_BYTES

__all__: list[str] = []


@torch.library.register_fake("vadx::mahalanobis_cascade")
def _mahalanobis_cascade_fake(feats, mu1, w1, beta, alpha, ct_weight, ct_bias, mu2, w2, phi):
    check_same_device("mahalanobis_cascade", "feats", feats, mu1=mu1, w1=w1, ct_weight=ct_weight,
                      ct_bias=ct_bias, mu2=mu2, w2=w2)
    torch._check_value(
        feats.dim() == 4, lambda: f"mahalanobis_cascade: feats must be [B, m, H, W], got {feats.dim()}-D"
    )
    B, _, H, W = feats.shape
    d1 = feats.new_empty((B, H, W))
    return d1, feats.new_empty((B, H, W)), feats.new_empty((B, H, W), dtype=torch.uint8)


@torch.library.register_fake("vadx::rollback_coverage")
def _rollback_coverage_fake(weights, size, jump, offset, out_size):
    # The geometry is SymInt[2]: out_size may be symbolic (e.g. a frame's shape under
    # torch.compile(dynamic=True)); the output is [B, H0, W0] without guarding on its values.
    torch._check_value(
        weights.dim() == 3, lambda: f"rollback_coverage: weights must be [B, Hk, Wk], got {weights.dim()}-D"
    )
    torch._check_value(
        len(out_size) == 2, lambda: f"rollback_coverage: out_size must be (h, w), got {out_size}"
    )
    if all(isinstance(v, int) for v in (weights.shape[0], *out_size)):  # as the C++ checks
        torch._check_value(
            min(out_size) >= 0,
            lambda: f"rollback_coverage: out_size must be >= 0 per axis (h, w), got {list(out_size)}",
        )
        nbytes = weights.shape[0] * out_size[0] * out_size[1] * weights.element_size()
        torch._check_value(
            nbytes <= MAX_OUTPUT_BYTES,
            lambda: f"rollback_coverage: out_size {list(out_size)} for {weights.shape[0]} frames "
            f"makes an output of {nbytes if nbytes < 2**63 else 'more than 2^63'} bytes; it must "
            f"be at most 2^40 bytes (1 TiB, vadx.ops.rollback_coverage.MAX_OUTPUT_BYTES)",
        )
    return weights.new_empty((weights.shape[0], out_size[0], out_size[1]))


@torch.library.register_fake("vadx::sista")
def _sista_fake(x, A, gram, lambda1, lambda2, gamma, S, alpha0, K, mode, keep_states=True):
    check_same_device("sista", "x", x, A=A, gram=gram, lambda1=lambda1, lambda2=lambda2,
                      gamma=gamma, S=S, alpha0=alpha0)
    torch._check_value(x.dim() == 3, lambda: f"sista: x must be [B, T, d], got {x.dim()}-D")
    torch._check_value(A.dim() == 2, lambda: f"sista: A must be [d, n], got {A.dim()}-D")
    B, T, _ = x.shape
    n = A.shape[1]
    return x.new_empty((B, T, n)), x.new_empty((T, K if keep_states else 0, B, n))


@torch.library.register_fake("vadx::sista_backward")
def _sista_backward_fake(grad, x, A, gram, lambda1, lambda2, gamma, S, codes, states, mode,
                         need_dx=True):
    check_same_device("sista_backward", "x", x, grad=grad, A=A, gram=gram, lambda1=lambda1,
                      lambda2=lambda2, gamma=gamma, S=S, codes=codes, states=states)
    n = A.shape[1]
    return (
        x.new_empty(x.shape) if need_dx else x.new_zeros(()).expand(x.shape),
        A.new_empty(A.shape),
        A.new_empty((n, n)),
        x.new_empty(()),
        x.new_empty(()),
        x.new_empty(()),
        x.new_empty(S.shape),
        x.new_empty((x.shape[0], n)),
    )


@torch.library.register_fake("vadx::accumulator_score")
def _accumulator_score_fake(sigma, tau, nu, lb, ub, x0, decay):
    check_same_device("accumulator_score", "sigma", sigma, x0=x0)
    torch._check_value(
        sigma.dim() == 2, lambda: f"accumulator_score: sigma must be [B, T], got {sigma.dim()}-D"
    )
    torch._check_value(
        x0.dim() == 1 and x0.shape[0] == sigma.shape[0], lambda: "accumulator_score: x0 must be [B]"
    )
    return sigma.new_empty(sigma.shape), x0.new_empty(x0.shape)
