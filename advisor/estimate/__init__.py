"""Memory estimation: simulated execution on meta tensors (`simulate`), with the closed form (advisor.memory) as the
fallback when torch is absent."""
