"""sectorbot: a DeFi sector-rotation daemon (spot buckets plus a low-leverage perp overlay)."""

__version__ = "0.1.0"
