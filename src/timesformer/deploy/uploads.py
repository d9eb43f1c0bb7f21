"""Uploaded files: streamed to a private folder under a size limit, then checked as videos.

Each problem is an `UploadError` with the HTTP status that names it: 413 too large (bytes or
duration), 415 not a video at all (an image, a text, an unknown container), 422 a video that
cannot be decoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHUNK = 1 << 20
IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
)


class UploadError(Exception):
    """A request whose file cannot be served; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def save_upload(file: Any, folder: Path, limit: int, limit_mb: float) -> Path:
    """Copy an UploadFile into `folder` chunk by chunk; 413 as soon as it passes `limit` bytes."""
    name = Path(file.filename or "upload").name or "upload"
    suffix = "".join(c for c in Path(name).suffix[:8] if c.isalnum() or c == ".")
    path = folder / f"video{suffix}"
    size = 0
    with open(path, "wb") as out:
        while chunk := await file.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise UploadError(
                    413, f"upload is over the {limit_mb:g} MB limit (--max-upload-mb)"
                )
            out.write(chunk)
    if size == 0:
        raise UploadError(422, "the uploaded file is empty")
    return path


class BodyTooLarge(Exception):
    """Raised while a body is read, once it passes its limit (FastAPI wraps it in a 400)."""


def caused_by(error: BaseException, kind: type) -> bool:
    """Whether `kind` is among the causes of `error` (through exception groups too)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        group = getattr(seen, "exceptions", None)  # an ExceptionGroup (anyio task groups)
        if isinstance(group, tuple):
            return any(caused_by(e, kind) for e in group)
        seen = seen.__cause__ or seen.__context__
    return False


class BodyLimit:
    """ASGI middleware: a body on `paths` past `limit` bytes is refused (413) as soon as it is.

    Content-Length is checked up front elsewhere; this also catches a chunked body, which has
    none, and stops reading it there instead of spooling the whole of it to disk first."""

    def __init__(self, app: Any, limit: int, paths: tuple[str, ...]) -> None:
        self.app, self.limit, self.paths = app, limit, paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        total = 0

        async def counted() -> dict:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > self.limit:  # the app's handler answers it as JSON
                    raise BodyTooLarge(f"the body passed {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


def sniff_image(head: bytes) -> str | None:
    """'a PNG image' etc. when the first bytes are an image's, else None."""
    for magic, what in IMAGE_MAGIC:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    return None


def check_video(path: Path, max_duration_s: float) -> float:
    """The video's duration in seconds; UploadError (415 / 422 / 413) when it is not servable."""
    import av

    with open(path, "rb") as f:
        head = f.read(16)
    image = sniff_image(head)
    if image:
        raise UploadError(415, f"the file is {image}, not a video")
    try:
        container = av.open(str(path))
    except Exception as e:  # PyAV raises many error types for unknown input
        raise UploadError(
            415, f"the file is not a video container PyAV can open ({type(e).__name__})"
        ) from None
    try:
        streams = container.streams.video
        if not streams:
            raise UploadError(415, "the file has no video stream")
        fmt = container.format.name or ""
        if any(k in fmt for k in ("image2", "_pipe", "png", "jpeg")) and "mjpeg" not in fmt:
            raise UploadError(415, f"the file is an image ({fmt}), not a video")
        stream = streams[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
    finally:
        container.close()
    if duration is not None and duration > max_duration_s:
        raise UploadError(
            413, f"the video is {duration:.1f} s long; this service takes up to "
            f"{max_duration_s:g} s (--max-duration)"
        )  # fmt: skip
    return duration or 0.0
