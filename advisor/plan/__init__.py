"""The plan: enumerate from_pretrained candidates, run every rule on each, estimate their memory, reject the
impossible, rank the rest (`recommend.make_plan`), and write the chosen kwargs (`emit`); the doctor report
(`doctor_report`). Types shared by the planner and the ranking live in `options`.

May import: the vocabulary modules, `advisor.io`, `advisor.isolation`, `advisor.knowledge`, `advisor.probe`,
`advisor.model`, `advisor.rules`, `advisor.estimate` and `advisor.matrix`; never prove, fleet, the API, render
or the CLI.
"""
