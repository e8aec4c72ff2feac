"""The HTTP service and its web page: `create_app(run_dir)` builds the FastAPI app."""

from bert4rec.serve.app import create_app

__all__ = ["create_app"]
