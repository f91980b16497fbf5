"""senet's version (one place: the package, the wheel and `senet --version` read it)."""

__version__ = "0.2.0"
