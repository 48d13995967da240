"""Helpers for testing archspec and specs written for it.

`archspec.testing.strategies` holds hypothesis strategies that generate random valid specs (with the
figures they must compile to) and random invalid ones (with the error codes they must raise). It
imports hypothesis, a test dependency (`pip install archspec[dev]`), so import it only from tests.
"""
