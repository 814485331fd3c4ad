"""Engines run the explain stage over many inputs: here (local) or on a Ray cluster (ray)."""
