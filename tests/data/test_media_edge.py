"""Media the audits found read inconsistently: GIF folders, huge frame sizes, MPEG-PS B-frames."""

from __future__ import annotations

import json

from _video_helpers import index_frames
from PIL import Image

from timesformer.cli import main
from timesformer.data.datasets import scan_folder
from timesformer.data.inputs import expand_inputs
from timesformer.data.inspect import collect_videos
from timesformer.data.prepare import find_videos
from timesformer.data.video import VideoReader


def _gifs(folder, animated=True, still=True):
    folder.mkdir(parents=True, exist_ok=True)
    frames = [Image.fromarray(f) for f in index_frames(4)]
    if animated:
        frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    if still:
        frames[0].save(folder / "still.gif")
    return folder


def test_every_folder_scan_takes_gif_files(tmp_path):
    d = _gifs(tmp_path / "gifs")
    want = [d / "anim.gif", d / "still.gif"]
    assert [v.path for v in expand_inputs([str(d)])] == want  # predict, extract
    assert collect_videos([d]) == [str(p) for p in want]  # data check
    assert find_videos(d) == want  # data prepare
    _gifs(tmp_path / "tree" / "waving", still=False)
    samples, classes = scan_folder(tmp_path / "tree")  # class-folder datasets
    assert classes == ["waving"] and samples == [(str(tmp_path / "tree/waving/anim.gif"), 0)]
    with VideoReader(samples[0][0]) as r:
        assert r.num_frames == 4


def test_check_a_folder_of_gifs_reports_the_still_one_as_an_image(tmp_path, capsys):
    d = _gifs(tmp_path / "gifs")
    rc = main(["data", "check", str(d), "--json", "--no-progress", "--num-frames", "2",
               "--sampling-rate", "1"])  # fmt: skip
    records = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(capsys.readouterr().out)}
    assert rc == 1 and set(records) == {"anim.gif", "still.gif"}
    assert records["anim.gif"]["frames"] == 4 and records["anim.gif"]["clip_ms"] is not None
    assert not records["still.gif"]["ok"]
    assert any("an image" in p for p in records["still.gif"]["problems"])
