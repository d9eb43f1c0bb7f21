"""`timesformer serve --checkpoint P`: the HTTP API and web page for a model.

Heavy imports (torch, FastAPI, uvicorn) happen in `run`, so `timesformer --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import UsageError
from .common import add_model_arguments, device_of

EPILOG = """\
examples:
  timesformer serve -c runs/demo/best.pt                  # http://127.0.0.1:8000/
  TIMESFORMER_API_KEY=secret timesformer serve -c model.pt --port 9000
  curl -F file=@clip.mp4 http://127.0.0.1:8000/v1/predict

Routes: POST /v1/predict, /v1/extract, /v1/explain (multipart field "file"); GET /v1/model,
/healthz; the page at /; OpenAPI docs at /docs. It binds to 127.0.0.1 unless --host says
otherwise: put it behind an authenticating proxy, or use --api-key, before exposing it.
"""


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    add_model_arguments(p, json_help="print the address and routes as JSON once serving")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--max-upload-mb", type=float, default=200.0, help="largest upload (default 200)"
    )
    p.add_argument("--max-duration", type=float, default=600.0, metavar="S",
                   help="longest video in seconds (default 600)")  # fmt: skip
    p.add_argument(
        "--max-batch", type=int, default=8, help="clips per shared forward pass (default 8)"
    )
    p.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="how long a pass waits for more clips (default 10 ms)")  # fmt: skip
    p.add_argument(
        "--timeout", type=float, default=120.0, metavar="S", help="per request (default 120 s)"
    )
    p.add_argument("--workers", type=int, default=4, help="threads decoding uploads (default 4)")
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on /v1/; prefer $TIMESFORMER_API_KEY, "
                        "since a key given here shows in the process list")  # fmt: skip
    p.add_argument("--quiet", action="store_true",
                   help="no line per request on stderr (default: time, client, method, path, "
                        "status, milliseconds and, for an error, why)")  # fmt: skip
    return p


def run(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        print("timesformer serve: error: install the serve extra: pip install 'timesformer[serve]'",
              file=sys.stderr)  # fmt: skip
        return 1
    from ..deploy.serve import ServeOptions, serve

    for name in ("max_batch", "workers", "port"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if args.port > 65535:
        raise UsageError(f"--port must be 1..65535; got {args.port}")
    for name in ("max_upload_mb", "max_duration", "timeout"):
        value = getattr(args, name)
        if not value > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0; got {value:g}")
    if not args.max_wait_ms >= 0:
        raise UsageError(f"--max-wait-ms must be >= 0; got {args.max_wait_ms:g}")
    opts = ServeOptions(
        max_upload_mb=args.max_upload_mb, max_duration_s=args.max_duration,
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, timeout_s=args.timeout,
        decode_workers=args.workers, api_key=args.api_key or os.environ.get("TIMESFORMER_API_KEY"),
        device=str(device_of(args)), amp=args.amp, allow_pickle=args.allow_pickle,
        access_log=not args.quiet,
    )  # fmt: skip
    url = f"http://{args.host}:{args.port}"

    def ready() -> None:  # the model is loaded and the address free
        print(f"serving {args.checkpoint} on {url}/ (API docs at {url}/docs)", file=sys.stderr)
        if args.json:
            routes = ["/v1/predict", "/v1/extract", "/v1/explain", "/v1/model", "/healthz", "/"]
            print(json.dumps({"url": url, "routes": routes}), flush=True)

    def log(line: str) -> None:
        print(f"timesformer serve: {line}", file=sys.stderr)

    serve(args.checkpoint, host=args.host, port=args.port, opts=opts, on_ready=ready, log=log)
    return 0
