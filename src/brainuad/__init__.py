"""brainuad: unsupervised anomaly detection in brain MRI with conditioned diffusion models."""
__version__ = "0.1.0"
