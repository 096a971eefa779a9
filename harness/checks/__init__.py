"""Each case kind's rank program and verifier, and the machinery they share."""
