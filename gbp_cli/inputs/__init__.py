"""The find and load stages: which files are inputs, and how a photo becomes a model input."""
