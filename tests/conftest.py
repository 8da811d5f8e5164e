"""Shared test fixtures."""

import errno
import os
import socket
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def own_cache(monkeypatch):
    """Caches go under each test's data root: never into the AOI_CACHE of the user running the tests."""
    monkeypatch.delenv("AOI_CACHE", raising=False)


@pytest.fixture
def no_network(monkeypatch):
    """Make any network access in the test fail loudly (data loaders must never download in tests)."""
    import tonic.download_utils

    def refuse(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(tonic.download_utils, "download_url", refuse)


@pytest.fixture
def read_only(monkeypatch):
    """read_only(folder): creating anything under `folder` fails as on a read-only mount (EROFS from
    os.mkdir and os.open, which every aoi writer goes through; chmod would not stop root)."""

    def make(folder: Path) -> None:
        real_mkdir, real_open = os.mkdir, os.open

        def refuse_inside(path) -> None:
            if Path(os.fsdecode(path)).resolve().is_relative_to(folder.resolve()):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

        def mkdir(path, *args, **kwargs):
            refuse_inside(path)
            return real_mkdir(path, *args, **kwargs)

        def open_(path, flags, *args, **kwargs):
            if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
                refuse_inside(path)
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(os, "open", open_)

    return make


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real one-node Slurm cluster (tests/slurm_cluster.py) for the session; skipped, saying why,
    where it cannot run (not root, Slurm or munge not installed)."""
    import slurm_cluster as cluster

    reason = cluster.unavailable()
    if reason:
        pytest.skip(reason)
    started = cluster.start(tmp_path_factory.mktemp("slurm"))
    yield started
    cluster.stop(started)
