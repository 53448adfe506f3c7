"""The package version (a leaf module: the data writers record it without importing the package's API)."""

__version__ = "0.1.0"
