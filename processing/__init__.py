"""Streaming signal processing for irregular sensor chunks.

This package's ``__init__`` imports nothing heavy on purpose: the function app imports
:mod:`chunk_contract.names` on its cold-start path and must not pull in numpy.
"""
