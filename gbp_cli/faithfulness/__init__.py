"""`gbp evaluate`: how faithful a map is to the model — deletion and insertion (Petsiuk et al.
2018), ROAD (Rong et al. 2022) — beside maps that know nothing of the model: a random one and an
edge detector. The names live here, free of numpy, for the command line's options."""

METRICS = ("deletion", "insertion", "road")
BASELINES = ("random", "edges")


def check_libraries() -> None:
    """scipy (ROAD's sparse solve, the t-interval), or one line saying how to install it."""
    from gbp_cli.backends.base import DISTRIBUTION
    from gbp_cli.errors import GbpError

    try:
        import scipy.sparse.linalg
        import scipy.stats  # noqa: F401
    except ImportError:
        raise GbpError(
            f"gbp evaluate needs scipy: pip install '{DISTRIBUTION}[evaluate]'"
        ) from None
