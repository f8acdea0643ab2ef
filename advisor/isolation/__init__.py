"""Children and signals: run a worker in its own process (a crash, hang or OOM becomes a result), make it die with
the advisor, unwind on SIGTERM/SIGHUP like Ctrl-C, and run one call in a background thread.

Standard library only, so workers can import it before anything heavy. May import: the vocabulary modules
(`advisor.errors`, `advisor.env`); nothing above.
"""
