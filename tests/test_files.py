"""The one atomic writer and the up-front output checks."""

import os
import stat

import pytest

from timesformer.files import (
    OutputError,
    atomic_write,
    atomic_write_text,
    check_output_file,
    ensure_dir,
)


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.pt2"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["a.pt2"]
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode & 0o044, "a finished file is readable by others like any plain write"


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_writer_that_recreates_its_file_still_gets_the_umask_mode(tmp_path, umask_022):
    def recreate(p):  # as safetensors' save_file does: a new 0600 file under the same name
        p.unlink()
        fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
        os.write(fd, b"x")
        os.close(fd)

    target = atomic_write(tmp_path / "m.safetensors", recreate)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_safetensors_and_torch_checkpoints_get_the_umask_mode(tmp_path, umask_022):
    from timesformer.models import TimeSformer, TimeSformerConfig
    from timesformer.models.weights import save_checkpoint, save_safetensors

    cfg = TimeSformerConfig(img_size=16, patch_size=8, num_frames=2, embed_dim=16, depth=1,
                            num_heads=2, num_classes=2)  # fmt: skip
    model = TimeSformer(cfg)
    for path in (save_safetensors(model, tmp_path / "m.safetensors"),
                 save_checkpoint(model, tmp_path / "m.pt")):  # fmt: skip
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "kept")

    def boom(p):
        p.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, boom)
    assert target.read_text() == "kept"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_full_disk_names_the_target(tmp_path):
    import errno

    target = tmp_path / "grid.png"

    def full(p):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputError, match=r"cannot write .*grid\.png: No space left"):
        atomic_write(target, full)
    assert os.listdir(tmp_path) == []


def test_torch_save_failing_on_a_full_disk_is_an_output_error(tmp_path):
    def torch_full(p):
        p.write_bytes(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 3 vs 2")

    with pytest.raises(OutputError, match=r"cannot write .*last\.pt: the write failed"):
        atomic_write(tmp_path / "last.pt", torch_full)
    assert os.listdir(tmp_path) == []

    def other(p):
        raise RuntimeError("a bug, not the disk")

    with pytest.raises(RuntimeError, match="a bug"):
        atomic_write(tmp_path / "x.pt", other)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_row_writer_on_a_full_disk_is_one_output_error():
    from timesformer.engine.records import RowWriter

    with pytest.raises(OutputError, match="cannot write /dev/full: No space left"):
        RowWriter("/dev/full", ["video", "label"])


def test_cli_prints_a_bare_oserror_as_one_line(monkeypatch, capsys):
    import errno

    from timesformer import cli
    from timesformer.commands import models

    def full(args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/x/out.csv")

    monkeypatch.setattr(models, "run", full)
    assert cli.main(["models"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "timesformer models: error: /x/out.csv: No space left on device"


def test_temporary_keeps_the_suffix(tmp_path):
    seen = []
    atomic_write(tmp_path / "m.pt2", lambda p: (seen.append(p.suffix), p.write_bytes(b"x")))
    assert seen == [".pt2"]


def test_output_checks_name_the_problem(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        ensure_dir(afile / "out")
    with pytest.raises(OutputError, match="cannot create|not a folder"):
        check_output_file(afile / "out" / "x.json")
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(tmp_path)
    assert ensure_dir(tmp_path / "new" / "deep").is_dir()
