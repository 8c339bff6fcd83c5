"""vadx's custom operators (torch.ops.vadx.*) with documented Python wrappers."""

from vadx.ops.accumulator_score import accumulator_score

__all__ = ["accumulator_score"]
