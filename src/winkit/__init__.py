"""Winkit: a quick-commerce grocery system built from small FastAPI services."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("winkit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
