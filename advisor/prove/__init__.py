"""Everything that runs a model in a child to prove or time it (issue 12 starts this room with `tune`)."""
