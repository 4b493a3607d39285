"""reprsim: similarity analysis of neural network representations and attention."""

from reprsim._version import __version__

__all__ = ["__version__"]
