"""The model: a MODEL argument (a folder, a config.json, the HF cache, a shipped id) resolved offline into a
`ModelSpec`, with its parameter counts, what bitsandbytes would quantize, the attention implementations its class
declares and the kernel layers it has, per transformers release. No weights are loaded here.

`resolve` is the entry point; `spec` the value object; `meta`, `analysis`, `param_formula` and `quantizable`
count; `attention_support` and `kernel_layers` read the class; `config_bounds`, `remote_code` and `prequantized`
guard and read a stranger's config. May import: the vocabulary modules, `advisor.io`, `advisor.isolation` and
`advisor.knowledge`; nothing above (no probe, rules, plan or CLI).
"""
