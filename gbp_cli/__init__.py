"""gbp: what an image classifier looks at, as Guided Backpropagation saliency maps.

The library (README, "Python API"): `explain`, `Explainer`, their results `Explained` and
`Results`, `clear_cache`, and the errors, all of them `GbpError`s.
"""

from gbp_cli.version import __version__

__all__ = [
    "ArgumentError",
    "BackendError",
    "Explained",
    "Explainer",
    "GbpError",
    "ImageError",
    "InputError",
    "Results",
    "__version__",
    "clear_cache",
    "explain",
]
_LIBRARY = ("Explained", "Explainer", "Results", "clear_cache", "explain")
_ERRORS = ("ArgumentError", "BackendError", "GbpError", "ImageError", "InputError")


def __getattr__(name: str) -> object:
    """`from gbp_cli import explain` loads the library only when asked: `gbp --help` stays fast."""
    if name in _LIBRARY:
        from gbp_cli import api

        return getattr(api, name)
    if name in _ERRORS:
        from gbp_cli import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'gbp_cli' has no attribute {name!r}")
