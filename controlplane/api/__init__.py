"""The dashboard API (FastAPI): see :mod:`controlplane.api.app`. ``controlplane serve`` runs it."""

from controlplane.api.app import create_app

__all__ = ["create_app"]
