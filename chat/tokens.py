"""Counting tokens as the companion's model counts them.

INTERFACE (skeleton): ``TokenCounter`` is the contract the prompt budget codes against.
"""

from __future__ import annotations

from typing import Protocol


class TokenCounter(Protocol):
    def count(self, text: str) -> int:
        """Tokens ``text`` takes in the model's tokenizer (exact or a safe estimate)."""
        ...
