"""Helpers for reading server frames in tests."""

from __future__ import annotations


def unnumbered(event: dict) -> dict:
    """``event`` without its sequence number (docs/websocket.md), for comparing its content."""
    return {key: value for key, value in event.items() if key != "seq"}
