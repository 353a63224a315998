"""Pytest fixtures that start the local fake back-end servers."""
