"""Shared test fixtures."""

import socket

import pytest


@pytest.fixture
def no_network(monkeypatch):
    """Make any network access in the test fail loudly (data loaders must never download in tests)."""
    import tonic.download_utils

    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(tonic.download_utils, "download_url", refuse)
