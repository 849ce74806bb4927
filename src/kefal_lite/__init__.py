"""kefal-lite: a self-hosted host-security monitor in one Python process."""

__version__ = "0.1.0"
