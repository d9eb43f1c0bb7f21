"""What is refused before decoding, decided in one place for the reader and ``data check``.

A still image is not a video (``image_kind``: asked first, so a huge photo is named an image).
Frames too large to decode are refused (``frame_size_reason``): above ``max_frame_pixels()``
(8K UHD unless $TIMESFORMER_MAX_FRAME_PIXELS says otherwise), a tiny file of huge frames would
take gigabytes; beyond what FFmpeg itself decodes, a header is damaged. FFmpeg reports a Y4M header of such a
size as "Device or resource busy" when opening it, so ``declared_size_reason`` reads that
header itself to say what is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_FRAME_PIXELS = 7680 * 4320  # 8K UHD; larger frames are refused (TIMESFORMER_MAX_FRAME_PIXELS)
_MAX_ENV = "TIMESFORMER_MAX_FRAME_PIXELS"
# Containers FFmpeg uses for still images, and codecs of single pictures.
IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe",
                 "gif_pipe", "pgm_pipe", "ppm_pipe", "qoi_pipe", "jpegxl_pipe")  # fmt: skip
IMAGE_CODECS = ("png", "mjpeg", "bmp", "webp", "tiff", "gif", "jpeg2000", "qoi", "ppm", "jpegls")


def max_frame_pixels() -> int:
    """The largest frame (width x height) a reader decodes: a tiny file of huge frames would
    otherwise take gigabytes. $TIMESFORMER_MAX_FRAME_PIXELS overrides the 8K UHD default."""
    text = os.environ.get(_MAX_ENV, "").strip()
    try:
        return int(text) if text else MAX_FRAME_PIXELS
    except ValueError:
        raise ValueError(f"{_MAX_ENV}={text!r}: expected a whole number of pixels") from None


def ffmpeg_decodes_size(width: int, height: int) -> bool:
    """Whether FFmpeg accepts frames of this size at all (its ``av_image_check_size`` rule:
    a row of 8 bytes a pixel plus padding, times the padded height, under 2**31 bytes)."""
    return width > 0 and height > 0 and (8 * width + 1024) * (height + 128) < 2**31 - 1


def frame_size_reason(width: int, height: int, declared_by: str = "") -> str | None:
    """Why frames of ``width`` x ``height`` are not read (one line), or None if they are.
    ``declared_by`` names what states the size ("the Y4M header") where no frame was seen."""
    limit = max_frame_pixels()
    fits = ffmpeg_decodes_size(width, height)
    if width * height <= limit and (fits or width * height == 0):
        return None
    said = f", as {declared_by} declares," if declared_by else ""
    size = f"frames of {width}x{height} ({_mp(width * height)} MP){said} are larger than"
    if not fits:
        return f"{size} FFmpeg can decode at all (an impossible size: a damaged header?)"
    why = "8K UHD; set" if limit == MAX_FRAME_PIXELS else "as set by"
    return f"{size} the {_mp(limit)} MP this reads ({why} {_MAX_ENV} to allow more)"


def _mp(pixels: int) -> str:
    """Megapixels for messages: "45", "3600", "0.001"."""
    return f"{pixels / 1e6:.0f}" if pixels >= 10**7 else f"{pixels / 1e6:.3g}"


def image_kind(format_name: str, codec: str, frames: int) -> str | None:
    """The kind of still image ("PNG", "JPEG", "GIF") a file is, or None for a video: an image
    container, or one frame of an image codec (a one-frame mp4 of H.264 stays a video)."""
    fmt = format_name or ""
    if fmt not in IMAGE_FORMATS and not (frames == 1 and codec in IMAGE_CODECS):
        return None
    kind = fmt[: -len("_pipe")] if fmt.endswith("_pipe") else codec
    return {"jpeg": "JPEG", "mjpeg": "JPEG"}.get(kind, kind.upper())


def declared_size_reason(path: str | Path) -> str | None:
    """For a file FFmpeg would not open: the frame size reason when its header declares a
    size too large (a Y4M header states it in text), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    words = head.split(b"\n", 1)[0].split(b" ")
    if words[0] != b"YUV4MPEG2":
        return None
    size = {w[:1]: w[1:] for w in words[1:] if w[:1] in (b"W", b"H") and w[1:].isdigit()}
    if len(size) < 2:
        return None
    return frame_size_reason(int(size[b"W"]), int(size[b"H"]), "the Y4M header")
