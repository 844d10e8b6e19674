"""PatchNCE, CUT's patchwise contrastive loss (Park et al., ECCV 2020, eq. 2-3), as pure functions.

Each output patch (the query, from G(x)'s encoder features) must pick out the input patch at the
same position (the positive, from x's features) among the other sampled positions (the
negatives): a cross-entropy over cosine similarities divided by a temperature. CUT takes the
negatives from the same image only; ``include_all_negatives_from_minibatch`` (CUT's
``--nce_includes_all_negatives_from_minibatch``, for single-image training) pools the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# CUT fills a query's similarity to its own key among the negatives with this value (its
# positive logit is counted once, in the first column), so that exp(-10 / T) is about 0.
SELF_SIMILARITY_FILL = -10.0


def patch_nce_loss(
    query: torch.Tensor,
    key: torch.Tensor,
    batch_size: int,
    temperature: float = 0.07,
    include_all_negatives_from_minibatch: bool = False,
) -> torch.Tensor:
    """Per-patch PatchNCE loss, shape (B·P,): no reduction, as CUT's ``PatchNCELoss`` returns it.

    ``query`` and ``key`` are (B·P)×C, L2-normalised, row i of both from the same image and
    position (PatchSampleF with the same patch ids). The key is detached: no gradient flows
    through the positives and negatives, only through the query.
    """
    if query.shape != key.shape or query.dim() != 2:
        raise ValueError(f"query and key must both be (B·P)×C, got {tuple(query.shape)} and {tuple(key.shape)}")
    if batch_size < 1 or query.shape[0] % batch_size:
        raise ValueError(f"{query.shape[0]} patches cannot be split into batch_size {batch_size} images")
    num_patches, dim = query.shape
    key = key.detach()
    positive = (query * key).sum(dim=1, keepdim=True)  # (B·P)×1: each query against its own key
    groups = 1 if include_all_negatives_from_minibatch else batch_size
    query_groups = query.reshape(groups, -1, dim)  # G×P'×C
    key_groups = key.reshape(groups, -1, dim)
    negatives = torch.bmm(query_groups, key_groups.transpose(2, 1))  # G×P'×P': every query against every key
    per_group = negatives.shape[1]
    diagonal = torch.eye(per_group, device=query.device, dtype=torch.bool)[None]
    negatives = negatives.masked_fill(diagonal, SELF_SIMILARITY_FILL).reshape(-1, per_group)  # (B·P)×P'
    logits = torch.cat((positive, negatives), dim=1) / temperature
    targets = torch.zeros(num_patches, dtype=torch.long, device=query.device)  # the positive is column 0
    return F.cross_entropy(logits, targets, reduction="none")
