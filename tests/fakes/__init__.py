"""Faithful fakes of systems that cannot run here (see each module's docstring)."""

from tests.fakes.argo_server import FakeArgoServer, Fault, RecordedRequest

__all__ = ["FakeArgoServer", "Fault", "RecordedRequest"]
