"""Memory of one tensor-parallel rank (issue 30), from the planner's own estimate and the release's TP plan.

Why: under TP every rank holds the sharded modules' share (1/N) and the whole of what the plan does not name
(embeddings, norms, an lm_head the head plan leaves out), its share of the KV cache when KV heads are sharded
(all of it when they are replicated), one prefill's activations (kept whole: the hidden states between layers
are replicated on every rank) and its own CUDA context. Reusing `estimate_memory` keeps one memory model.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from advisor.candidate import BYTES
from advisor.estimate.memory import ALLOCATOR_SLACK, CUDA_CONTEXT_BYTES, MemoryEstimate
from advisor.knowledge.tp_plans import TpPlan
from advisor.model.spec import ModelSpec

__all__ = ["PerRankMemory", "per_rank_memory"]


class PerRankMemory(BaseModel):
    """One rank's share; `budget_bytes` is one GPU's usable memory (or the host RAM shared by all CPU ranks)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int
    sharded_weights_bytes: int  # this rank's share of the modules the plan shards
    replicated_weights_bytes: int  # what every rank holds whole
    kv_cache_bytes: int
    activation_bytes: int
    context_bytes: int  # the CUDA context (0 on the CPU)
    total_bytes: int
    budget_bytes: int
    fits: bool

    @property
    def planned_bytes(self) -> int:
        """Weights, KV cache and activations: what a rank allocates beyond its runtime (compared with RSS growth)."""
        return self.sharded_weights_bytes + self.replicated_weights_bytes + self.kv_cache_bytes + self.activation_bytes


def _replicated_weight_bytes(model: ModelSpec, plan: TpPlan, dtype: str) -> int:
    """Embeddings and an lm_head the plan leaves whole (norms and biases are left in the sharded share: < 0.1%)."""
    tied = bool(model.config.get("tie_word_embeddings", True)) if model.config else True
    table = model.vocab_size * model.hidden_size * BYTES.get(dtype, 2)
    embed = 0 if plan.shards("embed_tokens") else table
    head = 0 if tied or plan.shards("lm_head") else table
    return embed + head


def per_rank_memory(model: ModelSpec, whole: MemoryEstimate, plan: TpPlan, *, size: int, dtype: str,
                    budget_bytes: int, gpu: bool) -> PerRankMemory:
    """`whole` is the one-device estimate for the same dtype, quantization and workload."""
    replicated = min(_replicated_weight_bytes(model, plan, dtype), whole.weights_bytes)
    sharded = -(-(whole.weights_bytes - replicated) // size)
    kv_heads = max(model.num_key_value_heads, 1)
    kv_per_rank = max(kv_heads // size, 1)  # replicated heads (unit_colwise) keep one whole head per rank
    kv = -(-whole.kv_cache_bytes * kv_per_rank // kv_heads)
    context = CUDA_CONTEXT_BYTES if gpu else 0
    body = sharded + replicated + kv + whole.activation_bytes
    total = body + context + int(ALLOCATOR_SLACK * body)
    return PerRankMemory(size=size, sharded_weights_bytes=sharded, replicated_weights_bytes=replicated,
                         kv_cache_bytes=kv, activation_bytes=whole.activation_bytes, context_bytes=context,
                         total_bytes=total, budget_bytes=budget_bytes,
                         fits=budget_bytes > 0 and total * (1 if gpu else size) <= budget_bytes)
