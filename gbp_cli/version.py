"""gbp's version, in one place: the package metadata, `gbp --version` and every output's record
read it from here."""

__version__ = "0.1.0"
