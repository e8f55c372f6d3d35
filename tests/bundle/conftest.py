"""The bundle suite reuses the tiers of the mirror suite: a main in server mode, and the closed PUM."""

from mirror.conftest import main, pum_serve, sub  # noqa: F401 - fixtures used here
