"""Helpers the test suite and benchmarks share: reaching the real servers this machine runs.

A server that is absent makes its tests skip with a reason locally; with ``CI=true`` the same
absence fails the run, because CI must exercise every backend for real.
"""
