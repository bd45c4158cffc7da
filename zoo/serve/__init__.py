"""``zoo serve``: a local web page and HTTP API that inpaint one image with several methods side by side.

The top layer beside the runner and compare: it drives :mod:`zoo.runner`, :mod:`zoo.inpaint`
and the plugins; nothing in ``zoo`` imports it. :mod:`~zoo.serve.uploads` checks uploads,
:mod:`~zoo.serve.store` writes a job's inputs, :mod:`~zoo.serve.offer` says which methods and
checkpoints a request may name, :mod:`~zoo.serve.jobs` runs jobs (bounded queue, one worker
per device, an LRU of loaded models, progress, cancel), :mod:`~zoo.serve.app` is the FastAPI
app, and ``static/`` the page. docs/serve.md is the user's guide.
"""

from zoo.serve.app import ServeSettings, create_app
from zoo.serve.uploads import Limits, parse_pixels

__all__ = ["ServeSettings", "create_app", "Limits", "parse_pixels"]
