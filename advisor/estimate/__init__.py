"""The estimate: how much GPU memory a candidate needs. `memory.estimate_memory` is the entry point: simulated
execution on meta tensors (`simulate`, `tracker`, `adapter`, `selection`), with the closed form in `memory` as
the fallback when torch is absent or the simulation cannot run.

May import: the vocabulary modules, `advisor.io`, `advisor.isolation`, `advisor.knowledge` and `advisor.model`;
never the rules, the plan or anything above them.
"""
