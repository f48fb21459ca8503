"""The shared layer of the hybrid-sync functions: edge, infrastructure and domain code."""

__version__ = "0.1.0"
