"""Fixtures for tests, notebooks and report work: synthetic run directories (flashlab.testing.synthetic).

Nothing that judges a run imports it (an import-linter contract in pyproject.toml); a notebook
asks for a stand-in through flashlab.analysis.notebook_setup, which loads it on request only.
"""
