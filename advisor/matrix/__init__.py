"""Views over the attention tables: which implementation each architecture supports in one release (`table`,
`advisor matrix`), and across every release and GPU generation (`history`, `advisor matrix --full` and
`--history`).

May import: the vocabulary modules, `advisor.io`, `advisor.isolation`, `advisor.knowledge`, `advisor.model`
and `advisor.rules`; never the estimate, the plan or anything above them.
"""
