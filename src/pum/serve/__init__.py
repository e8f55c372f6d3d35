"""The embedded HTTP server over the current release (`pum serve`), its status page and /metrics."""

from pum.serve.workers import run_server

__all__ = ["run_server"]
