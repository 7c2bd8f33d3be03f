"""Depot's benchmark suite (issue 6): ``python -m bench`` (``make bench``); see
docs/performance.md."""
