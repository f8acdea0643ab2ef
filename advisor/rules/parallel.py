"""Tensor parallelism rules (issue 30): may this model load with `DistributedConfig(tp_size=N)` on this target?

Each rule reads facts only: the release's TP plan for the model type (data/tp_plans.json), the release's
from_pretrained facts (data/release_constraints.json), the model's sizes, the target's GPUs and their links, and
the per-rank memory estimate (passed in by the plan). `tensor_parallel_findings` runs them all for one size; the planner decides.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from advisor.candidate import Candidate
from advisor.findings import Finding, Severity
from advisor.knowledge.tp_plans import REPLICATING_STYLES, TpPlan
from advisor.numbers import size as fmt_size
from advisor.rules.base import Context, rule

__all__ = ["tensor_parallel_findings", "tp_kwarg", "links_between"]

class RankMemory(Protocol):
    """What TP005 reads of one rank's memory (advisor/estimate/per_rank.py PerRankMemory): the plan passes it
    down, since the rules sit beside the estimate, not above it (the layers contract)."""

    @property
    def fits(self) -> bool: ...
    @property
    def total_bytes(self) -> int: ...
    @property
    def budget_bytes(self) -> int: ...
    @property
    def sharded_weights_bytes(self) -> int: ...
    @property
    def replicated_weights_bytes(self) -> int: ...
    @property
    def kv_cache_bytes(self) -> int: ...


_QUANT_FACTS = {"fp8": "tp_quant_fp8"}  # our quantization -> the release fact marking its modules for local TP


def _none(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    return iter(())


def tp_kwarg(ctx: Context) -> tuple[str | None, str]:
    """How the target release asks for TP: "distributed_config", "tp_plan" or None, and the fact cited."""
    version = ctx.env.version_of("transformers")
    releases = ctx.knowledge.releases
    run = releases.at("distributed_config", version)
    if run is not None and run.value:
        return "distributed_config", run.cite()
    old = releases.at("tp_plan_kwarg", version)
    if old is not None and old.value:
        return "tp_plan", old.cite()
    if run is None:
        return None, f"transformers {version}: not in the shipped release facts"
    return None, f"{run.cite()}; {old.cite() if old else ''}".rstrip("; ")


def links_between(ctx: Context, size: int) -> tuple[str, str]:
    """("nvlink" | "pcie" | "unknown", why) for the first `size` GPUs: NVLink only when every pair has it."""
    links = ctx.env.links
    if not links:
        return "unknown", "the target records no GPU links (a snapshot from before issue 30, or NVML could not say)"
    wanted = {(a, b) for a in range(size) for b in range(size) if a < b}
    pairs = [link for link in links if (min(link.a, link.b), max(link.a, link.b)) in wanted]
    if len(pairs) < len(wanted) or any(p.kind == "unknown" for p in pairs):
        return "unknown", "not every GPU pair's link is known"
    source = pairs[0].source
    if all(p.kind == "nvlink" for p in pairs):
        return "nvlink", f"NVLink between every pair ({source})"
    slow = next(p for p in pairs if p.kind != "nvlink")
    return "pcie", f"GPUs {slow.a} and {slow.b} talk over PCIe ({slow.pcie_level or 'level unknown'}; {source})"


@rule("TP001", "no tensor-parallel plan for this model in this release", scope="plan",
      fix="use device_map (pipeline) placement, or a transformers release whose configuration of this model type "
          "declares base_model_tp_plan")
def no_plan(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """`tp_plan="auto"` uses the configuration's `base_model_tp_plan`; a model type without one (opt, falcon,
    bloom, gpt2, mamba, whisper in 5.25) has nothing to shard, and from_pretrained refuses or loads it whole on
    every rank. Read per release from the wheels (data/tp_plans.json)."""
    return _none(ctx, c)


@rule("TP002", "the release cannot ask for tensor parallelism", scope="plan",
      fix="upgrade transformers: DistributedConfig exists from 4.54, the tp_plan kwarg from 4.47")
def no_kwarg(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """from_pretrained reads `distributed_config` (DistributedConfig, from 4.54) or the older `tp_plan` kwarg
    (4.47 onwards, deprecated in 5.x with a FutureWarning, and not read at all by 5.15.1); a release with neither
    passes the kwarg on to the model's __init__, which raises TypeError."""
    return _none(ctx, c)


@rule("TP003", "a sharded size does not divide by the TP size", scope="plan",
      fix="choose a TP size that divides the attention heads and KV heads (and, best, the intermediate size and "
          "vocabulary)")
def divisible(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """colwise q/k/v projections are cut into N equal slices; a slice that splits a head mixes heads, so the
    number of heads and KV heads must divide by N. The intermediate size (gate/up colwise, down rowwise) and the
    vocabulary (lm_head colwise) may shard unevenly (5.25 gives a rank a shorter slice): a warning, the largest
    rank then sets the time and the memory."""
    return _none(ctx, c)


@rule("TP004", "more ranks than KV heads", scope="plan",
      fix="use a TP size at most the number of KV heads, or device_map placement")
def kv_heads(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """With N above the number of KV heads, k_proj and v_proj have fewer heads than ranks: the load succeeds
    and the forward fails mid-way with a shape error, with no warning (5.25, a Llama with 2 KV heads at TP 4:
    every rank loads, then `RuntimeError: shape '[1, 8, -1, 16]' is invalid for input of size 64` in k_proj's
    view; tests/unit/test_parallelism.py reproduces it). Only a plan that replicates heads (`unit_colwise`: every
    rank keeps at least one whole head) allows it."""
    return _none(ctx, c)


@rule("TP005", "does not fit in one rank's memory", scope="plan",
      fix="use more ranks, quantize where the release allows it with TP, or shorten --seq-len / --batch")
def rank_memory(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Each rank holds its share of the sharded weights (1/N), the whole of what the plan leaves out
    (embeddings, norms, an lm_head the head plan does not name), its share of the KV cache (whole when KV heads
    are replicated), one prefill's activations and its own CUDA context; that must fit one GPU."""
    return _none(ctx, c)


@rule("TP006", "no NVLink between the GPUs", scope="plan",
      fix="use device_map (pipeline) placement, or GPUs joined by NVLink (SXM boards)")
def interconnect(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """Every layer ends in an all-reduce of the hidden states across ranks. Over NVLink that is cheap; over PCIe
    it costs about what the sharding saves, so TP brings no latency gain (a prediction, not measured here). Allowed
    with a warning."""
    return _none(ctx, c)


@rule("TP007", "quantization combined with tensor parallelism", scope="plan",
      fix="load unquantized with TP, or quantize with device_map placement")
def quantized(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """TP shards quantized weights only where the quantization method marks its modules for TP's local path
    (`_hf_quantized_needs_local_tp`: fine-grained FP8 and torchao from 5.16); bitsandbytes, quanto and hqq are not
    marked, so their packed weights would be cut as if they were plain Linear weights: refused as unproven."""
    return _none(ctx, c)


@rule("TP008", "more ranks than GPUs", scope="plan", fix="use a TP size at most the number of GPUs")
def ranks(ctx: Context, c: Candidate | None) -> Iterator[Finding]:
    """torchrun starts one process per rank and each binds one GPU (LOCAL_RANK)."""
    return _none(ctx, c)


def tensor_parallel_findings(ctx: Context, c: Candidate, size: int, plan: TpPlan,
                             per_rank: RankMemory | None) -> list[Finding]:
    """Every TP rule for `size` ranks; FAIL findings refuse tensor parallelism."""
    assert ctx.model is not None
    m, out = ctx.model, []
    option = f"tensor parallel {size}"
    kwarg, cite = tp_kwarg(ctx)
    if kwarg is None:
        out.append(no_kwarg.finding(Severity.FAIL, f"from_pretrained reads neither distributed_config nor tp_plan "
                                                   f"({cite})", option=option))
    else:  # where the release cannot ask for TP at all, TP002 alone says so
        if not plan.known:
            out.append(no_plan.finding(Severity.FAIL, f"whether {m.model_type} has a TP plan is unknown: {plan.cite}",
                                       option=option))
        elif not plan.exists:
            out.append(no_plan.finding(Severity.FAIL, f"{m.model_type} has no tensor-parallel plan ({plan.cite})",
                                       detected="no base_model_tp_plan", required="a plan", option=option))
    if kwarg == "tp_plan":
        out.append(no_kwarg.finding(Severity.INFO, f"this release has no DistributedConfig: the plan passes "
                                                   f"tp_plan=\"auto\" ({cite})", option=option))
    if ctx.gpus and size > len(ctx.gpus):
        out.append(ranks.finding(Severity.FAIL, f"{size} ranks on {len(ctx.gpus)} GPUs",
                                 detected=f"{len(ctx.gpus)} GPUs", required=f">= {size}", option=option))
    replicates = plan.style("k_proj", "v_proj") in REPLICATING_STYLES
    if m.num_key_value_heads < size and not replicates:
        out.append(kv_heads.finding(Severity.FAIL, f"TP {size} is more than the {m.num_key_value_heads} KV heads: "
                                    "the load succeeds and the forward fails mid-way",
                                    detected=f"{m.num_key_value_heads} KV heads", required=f">= {size}",
                                    option=option))
    hard = [("attention heads", m.num_attention_heads)]
    if m.num_key_value_heads >= size and not replicates:
        hard.append(("KV heads", m.num_key_value_heads))
    for what, value in hard:
        if value % size:
            out.append(divisible.finding(Severity.FAIL, f"{value} {what} do not divide by TP {size}",
                                         detected=f"{value} % {size} = {value % size}", required="0", option=option))
    for what, value in (("intermediate size", m.intermediate_size), ("vocabulary", m.vocab_size)):
        if value % size:
            out.append(divisible.finding(Severity.WARN, f"the {what} ({value}) shards unevenly over {size} ranks",
                                         detected=f"{value} % {size} = {value % size}", option=option))
    if c.quantization != "none":
        fact = _QUANT_FACTS.get(c.quantization)
        run = ctx.knowledge.releases.at(fact, ctx.env.version_of("transformers")) if fact else None
        if run is None or not run.value:
            where = f" ({run.cite()})" if run is not None else ""
            out.append(quantized.finding(Severity.FAIL, f"{c.quantization} is not marked for tensor parallelism in "
                                                        f"this release{where}", option=option))
    if per_rank is not None and not per_rank.fits:
        out.append(rank_memory.finding(
            Severity.FAIL, f"one rank needs {fmt_size(per_rank.total_bytes)} (weights "
                           f"{fmt_size(per_rank.sharded_weights_bytes + per_rank.replicated_weights_bytes)}, KV cache "
                           f"{fmt_size(per_rank.kv_cache_bytes)}); it has {fmt_size(per_rank.budget_bytes)}",
            detected=fmt_size(per_rank.total_bytes), required=f"<= {fmt_size(per_rank.budget_bytes)}", option=option))
    if ctx.gpus:
        kind, why = links_between(ctx, size)
        if kind == "pcie":
            out.append(interconnect.finding(Severity.WARN, f"{why}: TP's per-layer all-reduce is predicted to "
                                                           "cancel its latency gain", option=option))
        elif kind == "unknown":
            out.append(interconnect.finding(Severity.INFO, f"whether NVLink joins the GPUs is unknown: {why}",
                                            option=option))
    return out
