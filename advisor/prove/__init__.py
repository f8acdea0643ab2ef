"""Proof: everything that runs a model in a child to prove or time a plan. `smoke` loads it and generates
(`smoke_worker`, `fidelity`, `diagnosis`, `quant_proof`), `onnx` exports and runs it through ONNX Runtime
(`onnx_worker`), `bench` times the options (`bench_worker`), and `tune` measures and stores the best; the
workers run under `advisor.isolation`.

May import: everything below it (the vocabulary modules, `advisor.io`, `advisor.isolation`, `advisor.knowledge`,
`advisor.probe`, `advisor.model`, `advisor.rules`, `advisor.estimate`, `advisor.matrix`, `advisor.plan`); never
fleet, the API, render or the CLI.
"""
