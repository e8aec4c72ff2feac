"""The model a Recommender scores with: its own forward pass, with its linear layers on a
faster CPU kernel.

Each `nn.Linear` of a copy of the model (sharing its tensors) becomes one whose weight is
packed once, at load, for oneDNN's float32 kernel, and a GELU that follows one is computed in
the same pass. The products are the same, summed in another order, so scores differ in the
last bits only (top-10 agreement with the model 100% on ML-1M). PyTorch's default CPU kernel
for these 64-wide products (MKL's) is slower on the development machine's AMD EPYC: 1.4-1.6x
more users per second (docs/performance.md, "Recommendations for every user"). The copy is
used only where a probe batch scores as the model does; else the model runs as it is.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from bert4rec.model import BERT4Rec

logger = logging.getLogger(__name__)

PACK_ROWS = 51_200
"""The row count oneDNN packs weights for (a batch of 512 histories of 100 items); any count
runs, this one best."""
PROBE_TOLERANCE = 1e-4
"""Largest score difference, relative to the largest score, the packed model may show on the
probe batch against the model itself."""


class PackedLinear(nn.Module):
    """`linear` with its weight packed once for oneDNN's float32 kernel (inference only),
    and with `gelu` the exact GELU that follows it computed in the same pass. Keeps `weight`
    and `bias`, which code that slices them still reads."""

    def __init__(self, linear: nn.Linear, gelu: bool = False) -> None:
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), PACK_ROWS)
        self.post = ("gelu", "none") if gelu else ("none", "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.detach()
        attr, algorithm = self.post
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, bias, attr, [], algorithm)


def with_packed_linears(model: BERT4Rec) -> BERT4Rec:
    """A copy of `model` (its tensors shared, not copied) whose every `nn.Linear` is a
    `PackedLinear`; a Linear followed by an exact GELU in a `Sequential` takes the GELU in."""
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    faster = copy.deepcopy(model, memo=shared)
    for module in list(faster.modules()):
        children = list(module.named_children())
        for at, (name, child) in enumerate(children):
            if not isinstance(child, nn.Linear):
                continue
            after = children[at + 1][1] if at + 1 < len(children) else None
            fused = (isinstance(module, nn.Sequential) and isinstance(after, nn.GELU)
                     and after.approximate == "none")
            setattr(module, name, PackedLinear(child, gelu=fused))
            if fused:
                setattr(module, children[at + 1][0], nn.Identity())
    return faster.eval()


def scoring_model(model: BERT4Rec) -> nn.Module:
    """What computes `model`'s next-item logits fastest here: the packed copy on a CPU whose
    torch has oneDNN and where the probe agrees, else `model` itself."""
    model = model.eval()
    if next(model.parameters()).device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return model
    try:
        packed = with_packed_linears(model)
        agrees = _agrees(model, packed)
    except (RuntimeError, AttributeError) as err:  # no such kernel in this build of torch
        logger.debug("packed linear layers unavailable (%s); scoring with the model", err)
        return model
    return packed if agrees else model


@torch.inference_mode()
def _agrees(model: BERT4Rec, packed: nn.Module) -> bool:
    """Whether `packed` scores a seeded probe batch as `model` does (PROBE_TOLERANCE)."""
    config = model.config
    generator = torch.Generator().manual_seed(0)
    width = min(config.max_len, 16)
    items = torch.randint(1, config.vocab.mask, (8, width), generator=generator)
    items[:, -1] = config.mask_token
    items[:4, : width // 2] = 0  # left padding, as short histories have
    expected, got = model(items), packed(items)
    finite = torch.isfinite(expected)
    ok = torch.equal(finite, torch.isfinite(got))
    if ok:
        scale = expected[finite].abs().max().clamp_min(1e-6)
        ok = bool((expected[finite] - got[finite]).abs().max() / scale <= PROBE_TOLERANCE)
    if not ok:
        logger.warning("packed linear layers disagree with the model on a probe batch; "
                       "scoring with the model as it is")
    return ok
