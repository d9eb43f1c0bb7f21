"""Video data: decoding, clip sampling, transforms, datasets, synthetic videos."""

from .contract import contract_transform, contract_views
from .datasets import VideoDataset, load_label_names, read_list_file, scan_folder
from .sampling import (
    TEST_PROTOCOLS,
    View,
    clip_span,
    cover_clips,
    exact_rate,
    exact_span,
    segment_indices,
    test_clip_indices,
    test_views,
    train_clip_indices,
)
from .synthetic import (
    APPEARANCE_CLASSES,
    MOTION_CLASSES,
    render_appearance_clip,
    render_dataset,
    render_motion_clip,
    write_video,
)
from .transforms import (
    KINETICS_MEAN,
    KINETICS_STD,
    TestTransform,
    TrainTransform,
    centre_offset,
    crop_positions,
    normalize,
    short_side_resize,
)
from .video import VIDEO_EXTENSIONS, VideoDecodeError, VideoReader, read_frames

__all__ = [
    "contract_transform",
    "contract_views",
    "APPEARANCE_CLASSES",
    "KINETICS_MEAN",
    "KINETICS_STD",
    "MOTION_CLASSES",
    "TEST_PROTOCOLS",
    "VIDEO_EXTENSIONS",
    "TestTransform",
    "TrainTransform",
    "VideoDataset",
    "VideoDecodeError",
    "VideoReader",
    "View",
    "centre_offset",
    "clip_span",
    "cover_clips",
    "crop_positions",
    "exact_rate",
    "exact_span",
    "load_label_names",
    "normalize",
    "read_frames",
    "read_list_file",
    "render_appearance_clip",
    "render_dataset",
    "render_motion_clip",
    "scan_folder",
    "segment_indices",
    "short_side_resize",
    "test_clip_indices",
    "test_views",
    "train_clip_indices",
    "write_video",
]
