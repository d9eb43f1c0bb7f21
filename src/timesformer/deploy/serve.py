"""The HTTP service: FastAPI routes over the engine's predict, with batching, limits and a page.

Routes: `POST /v1/predict`, `POST /v1/extract`, `POST /v1/explain` (multipart field `file`),
`GET /v1/model`, `GET /healthz`, the web page at `/` and OpenAPI docs at `/docs`. Every error is
JSON `{"error": message, "status": code}` with the status that says what went wrong; the
service keeps serving after each. Uploads are streamed to a private temporary folder (0700),
counted as they arrive (413 past `max_upload_mb`, before the rest is read), and removed when the
request ends. Nothing else on disk is read or served: the page's files come from the package.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at run time.
import asyncio
import base64
import hmac
import io
import logging
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from torch import nn

from ..models.preprocess import Preprocess
from ..models.timesformer import head_missing
from .batching import BatchedModel, Batcher, RequestExpired
from .uploads import BodyLimit, BodyTooLarge, UploadError, caused_by, check_video, save_upload

STATIC = Path(__file__).with_name("static")
FORM_SLACK = 64 * 1024  # bytes of multipart framing and form fields beside the file
UPLOAD_ROUTES = ("/v1/predict", "/v1/extract", "/v1/explain")
MAX_VIEWS = 30  # K x S clips per request: the paper's largest protocol is 10 x 3
ACCESS_LOG = logging.getLogger("timesformer.serve")  # a line per request: `serve` shows it


@dataclass
class ServeOptions:
    """Limits and batching of the service (the `timesformer serve` flags)."""

    max_upload_mb: float = 200.0
    max_duration_s: float = 600.0
    max_batch: int = 8
    max_wait_ms: float = 10.0
    timeout_s: float = 120.0
    decode_workers: int = 4
    api_key: str | None = None
    device: str = "cpu"
    amp: str = "off"
    allow_pickle: bool = False  # full unpickling of the checkpoint: runs code from the file
    access_log: bool = True  # `serve` prints ACCESS_LOG's lines on stderr


def create_app(
    model: nn.Module, settings: Any, preprocess: Preprocess, opts: ServeOptions
) -> FastAPI:
    """The FastAPI application serving `model` (eval mode) cut by `settings` (its Preprocess)."""
    from ..data import VideoDecodeError
    from ..engine.predict import _parse_views, predict

    batcher = Batcher(model, max_batch=opts.max_batch, max_wait_ms=opts.max_wait_ms,
                      device=opts.device, amp=opts.amp)  # fmt: skip

    def served() -> BatchedModel:
        """The batched model for one request, which stops queueing clips past its timeout."""
        return BatchedModel(batcher, deadline=time.monotonic() + opts.timeout_s)

    pool = ThreadPoolExecutor(max_workers=opts.decode_workers, thread_name_prefix="decode")
    explain_lock = threading.Lock()
    limit = int(opts.max_upload_mb * 1024 * 1024)
    too_large = f"upload is over the {opts.max_upload_mb:g} MB limit (--max-upload-mb)"
    app = FastAPI(
        title="timesformer",
        description="Video classification with TimeSformer: top-k labels, embeddings, maps.",
        version=_version(),
    )
    app.state.batcher = batcher
    # a model without a head serves /v1/extract; the routes that classify answer 422 with this
    no_head = head_missing(model, extract="POST /v1/extract (or `timesformer extract`)")

    def error(
        status: int, message: str, request: Request | None = None, headers: Any = None
    ) -> JSONResponse:
        if request is not None:  # the access log says why
            request.state.error = message
        body = {"error": message, "status": status}
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(UploadError)
    async def _upload_error(request: Request, e: UploadError) -> JSONResponse:
        return error(e.status, str(e), request)

    @app.exception_handler(RequestValidationError)
    async def _bad_form(request: Request, e: RequestValidationError) -> JSONResponse:
        # a missing `file` field, topk=abc, ...: the same JSON as every other error
        parts = []
        for err in e.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query"))
            msg = err.get("msg", "invalid")
            if "Expected UploadFile" in msg:  # `file=text` (-F file=x, not file=@x)
                msg = "expected an uploaded file (a multipart part with a filename), got text"
            parts.append(f"{where or 'request'}: {msg}")
        return error(422, "; ".join(parts) or "invalid request", request)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        if e.status_code == 413 or caused_by(e, BodyTooLarge):  # hit while the form was read
            return error(413, too_large, request)
        if caused_by(e, ClientDisconnect):  # nobody reads it; the log says why
            return error(400, "the client disconnected before the upload was complete", request)
        headers = getattr(e, "headers", None)
        return error(e.status_code, str(e.detail), request, headers)

    async def check_fields(request: Request, *allowed: str) -> None:
        """422 naming a form field the route does not take (a typo must not pass unnoticed)."""
        form = await request.form()  # parsed once already: Starlette keeps it
        if len(form.getlist("file")) > 1:
            raise UploadError(422, f"{len(form.getlist('file'))} files sent; one per request")
        unknown = sorted(set(form.keys()) - set(allowed))
        if unknown:
            names = ", ".join(repr(k) for k in unknown)
            raise UploadError(
                422, f"unknown field {names} for {request.url.path}; it takes {', '.join(allowed)}"
            )

    def check_head() -> None:
        """422 before an upload is read when the model cannot classify (no head)."""
        if no_head is not None:
            raise UploadError(422, no_head)

    def checked_views(views: str | None) -> str:
        """The request's views (default: the contract's), refused past MAX_VIEWS clips."""
        text = views or _views(preprocess)
        try:
            K, S = _parse_views(text)
        except ValueError as err:
            raise UploadError(422, str(err)) from None
        if K * S > MAX_VIEWS:
            raise UploadError(422, f"views={text}: {K * S} clips per request, at most {MAX_VIEWS}")
        return text

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Any:
        if request.url.path.startswith("/v1/"):
            if opts.api_key and not _authorised(request.headers.get("authorization"), opts.api_key):
                return error(401, "missing or wrong API key: send Authorization: Bearer KEY",
                             request, {"WWW-Authenticate": "Bearer"})  # fmt: skip
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if request.url.path in UPLOAD_ROUTES and kind != "multipart/form-data":
                return error(415, f"expected multipart/form-data with the video in field 'file' "
                                  f"(curl -F file=@clip.mp4); got {kind or 'no Content-Type'}",
                             request)  # fmt: skip
            size = request.headers.get("content-length")
            if size and size.isdigit() and int(size) > limit + FORM_SLACK:
                return error(413, f"upload of {int(size) / 2**20:.1f} MB is over the "
                                  f"{opts.max_upload_mb:g} MB limit (--max-upload-mb)",
                             request)  # fmt: skip
        return await call_next(request)

    @app.middleware("http")  # added last, so it runs first: it also sees the guard's refusals
    async def _access(request: Request, call_next: Any) -> Any:
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            if opts.access_log:
                why = getattr(request.state, "error", "")
                client = request.client.host if request.client else "-"
                ACCESS_LOG.info("%s %s %s %d %.0f ms%s", client, request.method,
                                request.url.path, status, (time.perf_counter() - t0) * 1e3,
                                f": {why}" if why else "")  # fmt: skip

    async def run_job(fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(pool, fn, *args), opts.timeout_s)
        except (asyncio.TimeoutError, RequestExpired):
            raise UploadError(504, f"the request took longer than {opts.timeout_s:g} s") from None
        except VideoDecodeError as e:  # the reason alone: the path is our private temp file
            raise UploadError(
                422, f"the video could not be decoded: {_private(e.reason)}"
            ) from None
        except ValueError as e:
            raise UploadError(422, _private(str(e))) from None

    async def receive_video(file: UploadFile) -> tuple[Path, Path]:
        folder = Path(tempfile.mkdtemp(prefix="timesformer-upload-"))  # 0700, ours alone
        try:
            path = await save_upload(file, folder, limit, opts.max_upload_mb)
            await run_job(check_video, path, opts.max_duration_s)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return folder, path

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/v1/model")
    def model_info() -> dict[str, Any]:
        s = batcher.stats
        return {
            "preprocess": preprocess.to_dict(),
            "class_names": _class_names(model, preprocess),
            "config": model.config.to_dict(),
            "batching": {"max_batch": opts.max_batch, "max_wait_ms": opts.max_wait_ms,
                         "batches": s.batches, "clips": s.clips, "mean_batch": s.mean_batch},
            "limits": {"max_upload_mb": opts.max_upload_mb, "max_duration_s": opts.max_duration_s,
                       "timeout_s": opts.timeout_s},
        }  # fmt: skip

    @app.post("/v1/predict")
    async def predict_route(
        request: Request,
        file: UploadFile = File(..., description="the video"),
        views: str | None = Form(None, description="KxS test views, e.g. 1x3"),
        topk: int = Form(5, ge=1, le=1000),
        long: bool = Form(False, description="cover the whole video: timeline and segments"),
    ) -> dict[str, Any]:
        await check_fields(request, "file", "views", "topk", "long")
        check_head()
        # with long, as `predict --long`: one centre crop per clip unless the request says
        views = checked_views(views or ("1x1" if long else None))
        folder, path = await receive_video(file)
        try:
            kw = {"views": views, "topk": topk, "long": long,
                  "settings": settings, "batch_size": opts.max_batch}  # fmt: skip
            model_now = served()
            result = await run_job(lambda: predict(model_now, path, **kw))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        record = result.to_dict()
        record["path"] = file.filename or "upload"
        if long:
            record["segments"] = [
                {"start": c.start, "end": c.end, "label": c.label, "score": c.prob}
                for c in result.segments()
            ]
        return record

    @app.post("/v1/extract")
    async def extract_route(
        request: Request, file: UploadFile = File(...), views: str | None = Form(None)
    ) -> dict[str, Any]:
        await check_fields(request, "file", "views")
        views = checked_views(views)
        folder, path = await receive_video(file)
        try:
            feats, n = await run_job(_embed, served(), path, settings, views)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        name = file.filename or "upload"  # "path" as /v1/predict names it; "video" kept
        return {"path": name, "video": name, "embedding": feats, "dim": len(feats),
                "views": views, "num_clips": n, "pool": "cls"}  # fmt: skip

    @app.post("/v1/explain")
    async def explain_route(request: Request, file: UploadFile = File(...)) -> dict[str, Any]:
        await check_fields(request, "file")
        check_head()
        folder, path = await receive_video(file)
        try:
            return await run_job(_explain, model, path, settings, preprocess, explain_lock)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @app.get("/", include_in_schema=False)
    def index() -> Any:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.on_event("shutdown")
    def _stop() -> None:
        batcher.close()
        pool.shutdown(wait=False, cancel_futures=True)

    # the body is counted as it arrives (chunked too): 413 once past it, the rest unread
    app.add_middleware(BodyLimit, limit=limit + FORM_SLACK, paths=UPLOAD_ROUTES)
    return app


def _embed(model: nn.Module, path: Path, settings: Any, views: str) -> tuple[list[float], int]:
    """Class-token features averaged over the test views (K x S clips, batched with others)."""
    from ..data import VideoReader, contract_transform, contract_views
    from ..engine.predict import _parse_views

    K, S = _parse_views(views)
    with VideoReader(path) as reader:
        picked = contract_views(settings, reader.num_frames, reader.fps, num_clips=K, num_crops=S)
        transform = contract_transform(settings, S)
        clips = {v.clip: v.indices for v in picked}
        crops = [transform(reader.get_frames(list(clips[k]))) for k in sorted(clips)]
    x = torch.cat(crops)  # (K*S, 3, T, s, s)
    feats = model.forward_features(x)  # (K*S, D)
    return feats.mean(0).tolist(), int(x.shape[0])


def _explain(model: nn.Module, path: Path, settings: Any, pre: Preprocess, lock: Any) -> dict:
    """Rollout maps of the predicted class over one clip, as PNG overlays (base64)."""
    from PIL import Image

    from ..tools.explain import explain
    from ..tools.explain_figures import overlay
    from ..tools.explain_input import read_clip

    video, shown, indices, times = read_clip(path, settings)
    with lock:
        result = explain(model, video, labels=_class_names(model, pre))
    frames = overlay(shown, result.maps)  # (T, H, W, 3) uint8
    pngs = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="PNG")
        pngs.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    return {
        "label": result.label(result.predicted),
        "prob": float(result.probability),
        "frames": pngs,
        "frame_times": [round(t, 3) for t in times],
        "frame_relevance": [float(r) for r in result.frame_relevance],
    }


_UPLOAD_DIR = re.compile(r"[^\s'\"]*timesformer-upload-[^/\s'\"]*/")


def _private(text: str) -> str:
    """`text` without the server's temporary upload folder (FFmpeg quotes file names)."""
    return _UPLOAD_DIR.sub("", text)


def _class_names(model: nn.Module, pre: Preprocess) -> list[str]:
    from ..engine.predict import resolve_labels

    if pre.class_names:
        return list(pre.class_names)
    return resolve_labels(model)


def _views(pre: Preprocess) -> str:
    return f"{pre.test_views[0]}x{pre.test_views[1]}"


def _authorised(header: str | None, key: str) -> bool:
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("timesformer")
    except PackageNotFoundError:
        return "0+unknown"


def serve(
    checkpoint: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    opts: ServeOptions,
    on_ready: Any = None,
    log: Any = None,
) -> None:
    """Load `checkpoint` and serve it with uvicorn until interrupted; `on_ready()` is called
    once the model is loaded and the address is free (so "serving ..." is never premature).
    `log(line)` hears a warning: a model without a classification head serves embeddings only."""
    import uvicorn

    from .export import load_checkpoint

    model, pre = load_checkpoint(checkpoint, device=opts.device, allow_pickle=opts.allow_pickle)
    settings = _settings_from(model, pre)
    app = create_app(model, settings, pre, opts)
    check_address(host, port)
    if log is not None and head_missing(model) is not None:
        log(f"warning: {checkpoint}: the model has no classification head (num_classes=0): "
            "/v1/predict and /v1/explain answer 422; /v1/extract gives its features")  # fmt: skip
    # python-multipart warns about a malformed body on its own line; the access line says it
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    if opts.access_log and not ACCESS_LOG.handlers:
        handler = logging.StreamHandler()  # stderr, beside the "serving ..." line
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
        ACCESS_LOG.addHandler(handler)
        ACCESS_LOG.setLevel(logging.INFO)
        ACCESS_LOG.propagate = False
    if on_ready is not None:
        on_ready()
    uvicorn.run(app, host=host, port=port, log_level="warning")


def check_address(host: str, port: int) -> None:
    """ValueError naming `host:port` when it cannot be bound (in use, not this machine's)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ValueError(f"--host {host}: not an address of this machine ({e})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(addr)
        except OSError as e:
            raise ValueError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def _settings_from(model: nn.Module, pre: Preprocess) -> Preprocess:
    """The clip settings of the service: the contract itself (one conversion, in data)."""
    return pre
