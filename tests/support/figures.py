"""Figures a test measures on the way: printed as ``FIGURE name: value`` (``pytest -s`` shows them;
docs/reliability.md quotes them)."""

from __future__ import annotations


def figure(name: str, value: object) -> None:
    print(f"\nFIGURE {name}: {value}")
