"""brainuad: unsupervised anomaly detection in brain MRI with conditioned diffusion models.

``from brainuad import load_detector`` gives :func:`brainuad.predict.load_detector`; it is imported
on first use, so ``import brainuad`` stays light (no torch).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from brainuad.version import __version__

if TYPE_CHECKING:
    from brainuad.predict import load_detector

__all__ = ["__version__", "load_detector"]


def __getattr__(name: str) -> Any:
    """Lazy access to :func:`brainuad.predict.load_detector` (PEP 562)."""
    if name == "load_detector":
        from brainuad.predict import load_detector

        return load_detector
    raise AttributeError(f"module 'brainuad' has no attribute {name!r}")
