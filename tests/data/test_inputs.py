"""Input expansion shared by predict, extract and data check."""

import pytest

from timesformer.data.inputs import InputError, expand_inputs


def _touch(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"x")
    return p


def test_files_folders_globs_and_lists(tmp_path):
    a = _touch(tmp_path / "vids" / "cls1" / "a.mp4")
    b = _touch(tmp_path / "vids" / "cls2" / "b clip.mkv")
    _touch(tmp_path / "vids" / "notes.txt")
    _touch(tmp_path / "vids" / ".hidden.mp4")
    c = _touch(tmp_path / "c.webm")
    got = expand_inputs([str(tmp_path / "vids")])
    assert [(v.path, v.name) for v in got] == [(a, "cls1/a.mp4"), (b, "cls2/b clip.mkv")]
    assert [v.path for v in expand_inputs([str(tmp_path / "*.webm")])] == [c]
    lst = tmp_path / "list.csv"
    lst.write_text("path,label\nvids/cls1/a.mp4,0\nvids/cls2/b clip.mkv,1\n")
    assert [v.name for v in expand_inputs([str(lst)])] == [
        "vids/cls1/a.mp4",
        "vids/cls2/b clip.mkv",
    ]
    spaced = tmp_path / "list.txt"
    spaced.write_text("vids/cls2/b clip.mkv 1\n\n# comment\nc.webm\n")
    assert [v.path for v in expand_inputs([str(spaced)])] == [b, c]
    both = expand_inputs([str(c), str(tmp_path / "*.webm")])
    assert len(both) == 1, "the same video named twice is processed once"


@pytest.mark.parametrize(
    ("arg", "words"),
    [
        ("https://example.com/v.mp4", "URLs are not read"),
        ("missing.mp4", "no such file"),
        ("nomatch*.mp4", "matches no file"),
    ],  # fmt: skip
)
def test_refusals_name_the_argument(tmp_path, monkeypatch, arg, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=words):
        expand_inputs([arg])


def test_empty_folder(tmp_path):
    with pytest.raises(InputError, match="holds no video files"):
        expand_inputs([str(tmp_path)])


def test_a_text_file_that_lists_no_file_is_not_read_as_videos(tmp_path):
    (tmp_path / "notes.txt").write_text("hello this is not a list\nof videos at all\n")
    with pytest.raises(InputError, match=r"none of its 2 entries is a file"):
        expand_inputs([str(tmp_path / "notes.txt")])
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "ok.txt").write_text("a.mp4\nmissing.mp4\n")  # one there: the rest per file
    assert [v.name for v in expand_inputs([str(tmp_path / "ok.txt")])] == ["a.mp4", "missing.mp4"]


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR~x/clip.mp4\n"  # not UTF-8, and a `~x/` line in it


def test_a_binary_file_with_a_list_name_is_refused_by_name(tmp_path):
    (tmp_path / "binlist.txt").write_bytes(PNG)
    with pytest.raises(InputError, match=r"list file .*binlist.txt is not UTF-8 text"):
        expand_inputs([str(tmp_path / "binlist.txt")])


def test_a_tilde_user_that_does_not_exist_is_a_path_as_written(tmp_path):
    """Path.expanduser raises 'Could not determine home directory.' for ~nosuchuser: the
    argument is named instead, and a list line stays a path relative to the list."""
    arg = "~nosuchuser_ts/clip.mp4"
    with pytest.raises(InputError, match=r"^~nosuchuser_ts/clip.mp4: no such file .*no user"):
        expand_inputs([arg])
    listing = tmp_path / "l.txt"
    listing.write_text(f"{arg}\n")
    with pytest.raises(InputError, match=r"none of its 1 entries is a file .*~nosuchuser_ts"):
        expand_inputs([str(listing)])
    _touch(tmp_path / "~nosuchuser_ts" / "clip.mp4")  # a folder of that name: found, literally
    assert [v.name for v in expand_inputs([str(listing)])] == ["~nosuchuser_ts/clip.mp4"]


def test_a_quoted_csv_path_with_commas_is_one_path(tmp_path):
    # `data lists` quotes such paths; predict and extract read them as the training lists do
    v = _touch(tmp_path / "dogs, park" / "walk, day 1.mp4")
    lst = tmp_path / "train.csv"
    lst.write_text('path,label\n"dogs, park/walk, day 1.mp4",1\n')
    assert [x.path for x in expand_inputs([str(lst)])] == [v]


def test_every_folder_scan_leaves_out_dot_files_and_dot_folders(tmp_path):
    # macOS `._x.mp4` stubs, `.thumbnails/` and `.DS_Store` are never videos, in any command
    from timesformer.data.datasets import scan_folder
    from timesformer.data.inspect import collect_videos
    from timesformer.data.lists import index_videos
    from timesformer.data.prepare import find_videos

    root = tmp_path / "videos"
    keep = [_touch(root / "walk" / "a.mp4"), _touch(root / "jump" / "sub" / "b.mp4")]
    for junk in ("walk/._a.mp4", "walk/.DS_Store", "jump/.thumbnails/t.mp4", ".cache/c.mp4"):
        _touch(root / junk)
    assert [v.path for v in expand_inputs([str(root)])] == sorted(keep)
    samples, classes = scan_folder(root)
    assert sorted(p for p, _ in samples) == sorted(map(str, keep)) and classes == ["jump", "walk"]
    assert sorted(index_videos(root).values()) == sorted(map(str, keep))
    assert sorted(collect_videos([root])) == sorted(map(str, keep))
    assert sorted(find_videos(root)) == sorted(keep)
    # a folder given by the user inside a hidden one is scanned as usual
    inner = _touch(tmp_path / ".local" / "clips" / "c.mp4")
    assert [v.path for v in expand_inputs([str(inner.parent)])] == [inner]


def test_a_second_name_of_a_listed_file_is_left_out_and_said(tmp_path):
    from timesformer.data.inputs import duplicates_note, expand_each

    a = _touch(tmp_path / "vids" / "a.mp4")
    (tmp_path / "vids" / "link.mp4").symlink_to(a)
    dups: list = []
    got, bad = expand_each([str(tmp_path / "vids"), str(a)], dups)
    assert [v.path for v in got] == [a] and not bad
    assert len(dups) == 2 and all(kept == a for _, kept in dups)
    assert duplicates_note(dups).startswith("2 inputs left out as the same file as another")
    assert duplicates_note([]) is None
