"""Op declarations. `base` says what an op is; the other modules declare the built-in ones."""
