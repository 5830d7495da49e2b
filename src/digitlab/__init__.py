"""digitlab: handwritten-digit recognition with PyTorch, from the tutorial's CNN to a served model."""

__version__ = "0.1.0"
