"""gbp: what an image classifier looks at, as Guided Backpropagation saliency maps."""

from gbp_cli.version import __version__

__all__ = ["Explained", "__version__", "explain"]


def __getattr__(name: str) -> object:
    """`from gbp_cli import explain` loads the library only when asked: `gbp --help` stays fast."""
    if name in ("explain", "Explained"):
        from gbp_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'gbp_cli' has no attribute {name!r}")
