"""Many models on many machines: the fleet grid (`grid`, `advisor matrix MODEL --gpu ...`) and the deployment
manifest (`manifest`, `advisor check --manifest`). Each pair is one call of the API.

May import: the API and everything below it; never render or the CLI.
"""
