"""gbp: what an image classifier looks at, as Guided Backpropagation saliency maps."""

__version__ = "0.1.0"
