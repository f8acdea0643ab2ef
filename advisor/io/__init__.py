"""The disk and the network, at the edge: strangers' files in, outputs out, the run's temporary folder, the analysis
cache under the cache folder, and the one bounded look at the Hub.

Everything here treats what it reads as untrusted input (bounds, no symlinks followed below a trusted root) and
knows nothing of models, machines or plans. May import: the vocabulary modules (`advisor.errors`,
`advisor.env`, ...) and `advisor.isolation`; nothing above.
"""
