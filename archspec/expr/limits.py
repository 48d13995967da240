"""Every bound on one expression, in one place. Specs come from strangers: each limit is checked before
the costly work it guards (AS305). The lowering's work budget (archspec.limits) bounds the whole spec."""

MAX_SOURCE_CHARS = 1000
MAX_AST_NODES = 200
MAX_INT = 2**62
MAX_EXPONENT = 64
MAX_SEQUENCE_LEN = 10_000  # elements at every nesting level plus string characters
# Evaluation steps of one expression (Meter). Without comprehensions every expression was bounded by its
# size; a comprehension multiplies (nested ones multiply again), so the count itself is the bound. About
# a fifth of a second of evaluation; RegNet's generator takes a few hundred steps.
MAX_STEPS = 100_000
