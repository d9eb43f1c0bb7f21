"""`data lists` (folder tree, Kinetics CSV, SSv2 JSON) and the list reader it writes for."""

from __future__ import annotations

import json

import pytest

from timesformer.cli import main
from timesformer.data import VideoDataset, read_list_file
from timesformer.data.listfile import resolve_separator
from timesformer.data.lists import from_folder, parse_split


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0")  # a stand-in: lists never decode (0 bytes is left out)
    return path


# ---------------------------------------------------------------------------- the reader
@pytest.mark.parametrize(
    "text, sep",
    [
        ("a b.mp4 1\nc.mp4 0\n", None),  # whitespace; the label is the last field
        ("a b.mp4,1\nc.mp4,0\n", None),  # comma detected
        ("a b.mp4\t1\nc.mp4\t0\n", None),  # tab detected
        ("path,label\na b.mp4,1\nc.mp4,0\n", None),  # header skipped
        ("video\tlabel\na b.mp4\t1\nc.mp4\t0\n", "tab"),  # chosen by name
        ("label,path,start\n1,a b.mp4,0\n0,c.mp4,5\n", None),  # named columns in any order
        ('"a b.mp4",1\nc.mp4,0\n', "comma"),  # CSV quoting
        ("a b.mp4;1\nc.mp4;0\n", ";"),  # any literal
    ],
)
def test_list_formats(tmp_path, text, sep):
    f = tmp_path / "l.txt"
    f.write_text(text)
    assert read_list_file(f, root="/r", separator=sep) == [("/r/a b.mp4", 1), ("/r/c.mp4", 0)]


def test_class_names_mapped_through_labels(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("path,label\nx.mp4,Air Drumming\ny.mp4,abseiling\nz.mp4,1\n")
    names = ["abseiling", "air_drumming"]
    assert [y for _, y in read_list_file(f, label_names=names)] == [1, 0, 1]
    with pytest.raises(ValueError, match=r"l.csv:2: label must be a non-negative integer id"):
        read_list_file(f)  # names and no labels file
    (tmp_path / "labels.txt").write_text("abseiling\nair drumming\n")
    assert [y for _, y in read_list_file(f)] == [1, 0, 1]  # labels.txt beside the list
    ds = VideoDataset(f, label_names=names, num_frames=2, sampling_rate=2)
    assert [y for _, y in ds.samples] == [1, 0, 1] and ds.label_names == names
    f.write_text("x.mp4,juggling\n")
    with pytest.raises(ValueError, match=r"l.csv:1: class name 'juggling' is not in"):
        read_list_file(f, label_names=names)


def test_list_errors_name_file_and_line(tmp_path):
    f = tmp_path / "l.csv"
    f.write_text("clip,class\nx.mp4,0\n")
    with pytest.raises(ValueError, match=r"l.csv:1: header .* names no path column"):
        read_list_file(f)
    f.write_text("path\tlabel\tstart\nx.mp4\t0\t1\ny.mp4\n")
    with pytest.raises(ValueError, match=r"l.csv:3: expected at least 2 fields"):
        read_list_file(f)
    assert resolve_separator("tab") == "\t" and resolve_separator("auto") is None
    assert resolve_separator("comma") == "," and resolve_separator("space") == " "


def test_files_that_are_not_text_are_named(tmp_path, capsys):
    """A PNG given as a list, a labels file or a Kinetics CSV: one line naming the file (no
    bare 'utf-8' codec error), and a folder given as one says it is a folder."""
    from timesformer.data.listfile import list_file_paths

    png = tmp_path / "img.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    for read in (read_list_file, list_file_paths):
        with pytest.raises(ValueError, match=r"list file .*img.png is not UTF-8 text"):
            read(png)
    with pytest.raises(ValueError, match=r"list file .* is a folder; expected a text file"):
        read_list_file(tmp_path)
    f = tmp_path / "l.csv"
    f.write_text("x.mp4,cat\n")
    (tmp_path / "labels.txt").write_bytes(b"\xff\xfecat\n")
    with pytest.raises(ValueError, match=r"labels file .*labels.txt is not UTF-8 text"):
        read_list_file(f)
    (tmp_path / "v").mkdir()
    for argv in (["--kinetics-csv", str(png)], ["--kinetics-csv", str(tmp_path / "v")]):
        assert main(["data", "lists", *argv, "--videos", str(tmp_path / "v"),
                     "--out", str(tmp_path / "o")]) == 1  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"Kinetics CSV {argv[1]} is " in err[0], err
        assert "codec" not in err[0] and not (tmp_path / "o").exists()


def test_a_list_with_a_bom_and_crlf_lines_reads(tmp_path):
    f = tmp_path / "l.csv"
    f.write_bytes("\ufeffpath,label\r\na.mp4,1\r\n".encode())
    assert read_list_file(f, root="/r") == [("/r/a.mp4", 1)]


# ---------------------------------------------------------------------------- folder trees
@pytest.fixture()
def class_tree(tmp_path):
    src = tmp_path / "videos"
    for c, n in (("b_run", 10), ("a_walk", 10), ("c_jump", 3)):
        for i in range(n):
            _touch(src / c / f"{c}_{i}.mp4")
    return src


def test_folder_split_is_stratified_and_seeded(class_tree):
    splits, classes = from_folder(class_tree, (0.8, 0.1, 0.1), seed=0)
    assert classes == ["a_walk", "b_run", "c_jump"]
    per = {s: [sum(y == c for _, y in v) for c in range(3)] for s, v in splits.items()}
    assert per == {"train": [8, 8, 3], "val": [1, 1, 0], "test": [1, 1, 0]}
    assert sorted(p for v in splits.values() for p, _ in v) == sorted(
        str(p) for p in class_tree.rglob("*.mp4"))  # fmt: skip
    assert from_folder(class_tree, (0.8, 0.1, 0.1), seed=0) == (splits, classes)
    assert from_folder(class_tree, (0.8, 0.1, 0.1), seed=1)[0] != splits


def test_lists_command_folder(class_tree, tmp_path, capsys):
    out = tmp_path / "lists"
    assert main(["data", "lists", str(class_tree), "--out", str(out), "--split", "0.6,0.4"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["labels.txt", "train.csv", "val.csv"]
    assert (out / "labels.txt").read_text().split() == ["a_walk", "b_run", "c_jump"]
    train = read_list_file(out / "train.csv")  # paths relative to the list's folder
    assert all(tmp_path.joinpath(p).resolve().is_file() for p, _ in train)
    assert len(train) + len(read_list_file(out / "val.csv")) == 23


def test_lists_rerun_with_fewer_splits_removes_the_stale_ones(class_tree, tmp_path, capsys):
    out = tmp_path / "lists"
    assert (
        main(["data", "lists", str(class_tree), "--out", str(out), "--split", "0.6,0.2,0.2"]) == 0
    )
    assert (out / "test.csv").is_file()
    capsys.readouterr()
    assert main(["data", "lists", str(class_tree), "--out", str(out), "--split", "1,0"]) == 0
    assert "the old val.csv removed" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["labels.txt", "train.csv"]
    assert len(read_list_file(out / "train.csv")) == 23


@pytest.mark.parametrize(
    "name, text",
    [
        ("train.csv", "train/00000.mp4 0\n"),  # a synthetic dataset's list (no header)
        ("val.csv", "clip,class\nx.mp4,1\n"),  # a list of another tool: would be removed
        ("labels.txt", "left\nright\n"),  # class names beside none of this command's lists
    ],
)
def test_lists_never_replace_or_remove_files_they_did_not_write(
    class_tree, tmp_path, capsys, name, text
):
    out = tmp_path / "lists"
    out.mkdir()
    (out / name).write_text(text)
    argv = ["data", "lists", str(class_tree), "--out", str(out), "--split", "1,0"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out / name) in err[0] and "remove it first" in err[0], err
    assert sorted(p.name for p in out.iterdir()) == [name] and (out / name).read_text() == text


@pytest.mark.parametrize(
    "argv, match, code",
    [
        (["{src}", "--split", "0.5,0.6"], "--split: expected 2 or 3 non-negative fractions", 2),
        (["{src}", "--split", "a,b"], "--split", 2),
        (["{tmp}/nope"], "dataset folder not found", 1),
        (["{src}", "--out", "/proc/lists"], "output folder", 1),
        (["--kinetics-csv", "{tmp}/k.csv"], "--videos DIR is needed", 2),
        ([], "give one source", 2),
    ],
)
def test_lists_bad_input_one_line(class_tree, tmp_path, capsys, argv, match, code):
    argv = [a.format(src=class_tree, tmp=tmp_path) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "o")]
    assert main(["data", "lists", *argv]) == code  # 2: the command line; 1: what it names
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def test_parse_split():
    assert parse_split("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    assert parse_split("0.7,0.3") == (0.7, 0.3)
    for bad in ("0.5,0.6", "1", "-0.1,1.1", "x"):
        with pytest.raises(ValueError, match="--split"):
            parse_split(bad)


# ---------------------------------------------------------------------------- Kinetics, SSv2
def test_kinetics_csv(tmp_path, capsys):
    vids = tmp_path / "k400"
    _touch(vids / "train" / "abc_000010_000020.mp4")
    _touch(vids / "train" / "def_000000_000010.mkv")
    _touch(vids / "val" / "ghi_000005_000015.mp4")
    csv_file = tmp_path / "kinetics.csv"
    csv_file.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "zumba,abc,10,20,train\n"
        '"passing American football (in game)",def,0,10,train\n'
        "abseiling,ghi,5,15,validate\n"
        "zumba,gone,0,10,train\n"
    )
    out = tmp_path / "lists"
    argv = ["data", "lists", "--kinetics-csv", str(csv_file), "--videos", str(vids), "--out"]
    assert main([*argv, str(out)]) == 0
    assert "1 annotations without a video" in capsys.readouterr().out
    names = (out / "labels.txt").read_text().splitlines()
    assert names == ["abseiling", "passing American football (in game)", "zumba"]  # sorted
    train = read_list_file(out / "train.csv")
    assert [(p.rsplit("/", 1)[1], y) for p, y in train] == [
        ("abc_000010_000020.mp4", 2), ("def_000000_000010.mkv", 1)]  # fmt: skip
    assert [y for _, y in read_list_file(out / "val.csv")] == [0]
    assert "zumba,gone_000000_000010" in (out / "missing.csv").read_text()
    csv_file.write_text("label,youtube_id,time_start\nzumba,abc,10\n")
    assert main([*argv, str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "no column 'time_end'" in err and "kinetics.csv" in err and len(err.splitlines()) == 1


def test_ssv2_json(tmp_path):
    vids = tmp_path / "20bn"
    for i in (1, 2, 3):
        _touch(vids / f"{i}.webm")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"Pushing something from left to right": "1",
                                  "Holding something next to something": "0"}))  # fmt: skip
    entry = lambda i, t: {"id": str(i), "label": "x", "template": t, "placeholders": ["a"]}  # noqa: E731
    train = tmp_path / "something-something-v2-train.json"
    train.write_text(json.dumps([entry(1, "Holding [something] next to [something]"),
                                 entry(2, "Pushing [something] from left to right"),
                                 entry(9, "Pushing [something] from left to right")]))  # fmt: skip
    val = tmp_path / "something-something-v2-validation.json"
    val.write_text(json.dumps([entry(3, "Pushing [something] from left to right")]))
    out = tmp_path / "lists"
    assert main(["data", "lists", "--ssv2-json", str(train), "--ssv2-json", str(val),
                 "--ssv2-labels", str(labels), "--videos", str(vids), "--out", str(out)]) == 0  # fmt: skip
    assert (out / "labels.txt").read_text().splitlines() == [
        "Holding something next to something", "Pushing something from left to right"]  # fmt: skip
    assert [(p.rsplit("/", 1)[1], y) for p, y in read_list_file(out / "train.csv")] == [
        ("1.webm", 0), ("2.webm", 1)]  # fmt: skip
    assert [y for _, y in read_list_file(out / "val.csv")] == [1]
    assert (out / "missing.csv").read_text().splitlines()[1] == (
        "train,Pushing something from left to right,9"
    )


def test_empty_files_and_broken_links_are_left_out_and_said(class_tree, tmp_path):
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(class_tree, tree)
    (tree / "a_walk" / "empty.mp4").write_bytes(b"")
    (tree / "b_run" / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    with pytest.warns(UserWarning, match=r"2 file\(s\) left out: empty .* or a broken link"):
        splits, _ = from_folder(tree, (0.8, 0.1, 0.1), seed=0)
    names = {p.rsplit("/", 1)[-1] for v in splits.values() for p, _ in v}
    assert "empty.mp4" not in names and "gone.mp4" not in names and len(names) > 0
