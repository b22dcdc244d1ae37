"""Exact, sharded numerics: blockwise kNN, the Kozachenko-Leonenko entropy, and the paper's
entropy-based selection (greedy, threshold decay) as `lax` loops."""
