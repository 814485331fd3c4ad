"""The PyTorch backend: its models, how every activation is overridden, and the explain pass."""
