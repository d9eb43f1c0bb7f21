"""The shared model flags: the same five on every model-running command, one meaning each."""

from __future__ import annotations

import argparse

import pytest
import yaml

from timesformer.cli import build_parser, main

MODEL_COMMANDS = ("predict", "eval", "explain", "train")
SHARED = ("--checkpoint", "-c", "--device", "--amp", "--no-progress", "--json", "--debug")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser, _ = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_model_command_takes_the_shared_flags() -> None:
    subs = _subparsers()
    amp_choices = set()
    for name in MODEL_COMMANDS:
        options = {s: a for a in subs[name]._actions for s in a.option_strings}
        missing = [f for f in SHARED if f not in options]
        assert not missing, f"{name} lacks {missing}"
        amp_choices.add(tuple(options["--amp"].choices))
    assert amp_choices == {("off", "bf16", "fp16")}


def test_every_command_and_data_action_takes_debug() -> None:
    """--debug is what turns a one-line error into its traceback: every command has it."""
    subs = _subparsers()
    data = next(a for a in subs["data"]._actions if isinstance(a, argparse._SubParsersAction))
    parsers = {**{n: p for n, p in subs.items() if n != "data"},
               **{f"data {n}": p for n, p in data.choices.items()}}  # fmt: skip
    lacking = [n for n, p in parsers.items()
               if "--debug" not in {s for a in p._actions for s in a.option_strings}]  # fmt: skip
    assert not lacking, f"no --debug: {lacking}"


def _options(name: str, p: argparse.ArgumentParser):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for n, q in a.choices.items():
                yield from _options(f"{name} {n}", q)
        elif a.option_strings and a.nargs != 0:  # an option that takes a value
            yield name, a


def test_every_option_with_a_default_says_it_in_its_help() -> None:
    lacking = [
        f"{name} {a.option_strings[0]} (default {a.default!r})"
        for cmd, p in _subparsers().items()
        for name, a in _options(cmd, p)
        if a.default not in (None, [], argparse.SUPPRESS)
        and "default" not in (a.help or "")
        and str(a.default) not in (a.help or "")
    ]
    assert not lacking, lacking


def test_train_flags_set_the_run_config(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--config", "demo", "-c", "init.pt", "--device", "cpu", "--amp", "bf16",
            "--no-progress", "--print-config", "train.amp=fp16"]  # fmt: skip
    assert main(argv) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["pretrained"] == "init.pt"
    assert cfg["train"]["device"] == "cpu"
    assert cfg["train"]["amp"] == "bf16"  # the flag wins over the key=value override
    assert cfg["train"]["progress"] is False


def test_train_without_flags_keeps_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", "demo", "--print-config", "train.amp=bf16"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["train"]["amp"] == "bf16" and cfg["model"]["pretrained"] is None


def test_print_config_shows_fresh_as_it_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", "demo", "--fresh", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["resume"] is False
    assert main(["train", "--config", "demo", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["resume"] is True


def test_print_config_takes_num_classes_from_the_labels(capsys, tmp_path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nfox\n")
    assert main(["train", "--config", "demo", f"data.labels={labels}", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["num_classes"] == 3
    gone = tmp_path / "gone.txt"  # unreadable labels: the preset's count, and a note says so
    assert main(["train", "--config", "demo", f"data.labels={gone}", "--print-config"]) == 0
    out, err = capsys.readouterr()
    assert yaml.safe_load(out)["model"]["num_classes"] == 400
    assert "preset's" in err and "gone.txt" in err


def test_bad_device_is_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")  # inputs are checked before the device: this one exists
    rc = main(["predict", str(video), "-c", str(tmp_path), "--device", "tpu:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "--device" in err[0]


def test_overrides_may_sit_between_options(capsys) -> None:
    from timesformer import cli

    args = cli._parse(["eval", "--config", "c.yaml", "data.root=x", "-c", "b.pt", "data.y=2"])
    assert args.command == "eval" and args.overrides == ["data.root=x", "data.y=2"]
    args = cli._parse(["train", "--config", "c.yaml", "optim.lr=1", "--max-epochs", "2", "a.b=3"])
    assert args.overrides == ["optim.lr=1", "a.b=3"]
    with pytest.raises(SystemExit) as e:
        cli._parse(["predict", "v.mp4", "-c", "m.pt", "--bogus"])
    err = capsys.readouterr().err  # one line, naming the command and its help
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("timesformer predict: error: ") and "--bogus" in err
    assert "see timesformer predict --help" in err


def test_a_negative_value_reaches_the_option_check(capsys) -> None:
    from timesformer import cli

    for flag, value in (("--views", "-1x3"), ("--frames", "-2")):  # argparse alone: "expected
        with pytest.raises(SystemExit):  # one argument"; the option's own check names the value
            cli._parse(["predict", "v.mp4", "-c", "m.pt", flag, value])
        err = capsys.readouterr().err
        assert f"argument {flag}" in err and repr(value) in err, err
        assert len(err.strip().splitlines()) == 1


def test_models_json_gives_numbers(capsys) -> None:
    import json

    from timesformer.cli import main

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    base = next(r for r in rows if r["model"] == "timesformer_base")
    assert base["size"] == 224 and base["frames"] == 8 and base["gmacs_per_view"] == 195.8


def test_importing_the_command_line_does_not_import_torch() -> None:
    """`timesformer --help` and Ctrl-C during start-up: the package's API loads on first use."""
    import subprocess
    import sys

    code = "import sys, timesformer.cli, timesformer; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
    code = "import timesformer; print(timesformer.create_model.__name__, 'explain' in dir(timesformer))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["create_model", "True"], out.stderr


def test_ctrl_c_while_starting_is_one_line(monkeypatch, capsys) -> None:
    import timesformer.cli as cli

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_parse", interrupted)
    assert main(["models"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


@pytest.mark.parametrize("rank", ["0", "1"])
def test_config_error_under_torchrun_is_said_once(monkeypatch, capsys, rank: str) -> None:
    """A bad override is the same on every rank: rank 0 says it, the others exit quietly."""
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--config", "demo", "optim.lr=abc"]) == 1
    err = capsys.readouterr().err
    assert ("optim.lr" in err) == (rank == "0")


def test_other_errors_under_torchrun_name_the_rank(monkeypatch, capsys, tmp_path) -> None:
    """An error that may differ between ranks (a file missing on one node) names its rank."""
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert main(["train", "--config", str(tmp_path / "none.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("timesformer train: error: [rank 3] ") and "none.yaml" in err


def test_failed_starts_leave_no_empty_output_folder(tmp_path) -> None:
    """extract --out and predict --segments --out-dir make their folder early (to fail fast on
    a read-only place); a run that then fails removes it again while it is empty."""
    from timesformer.cli import main

    video = tmp_path / "v.mp4"
    video.write_bytes(b"x" * 10)
    assert main(["extract", str(video), "-c", str(tmp_path / "nope.pt"),
                 "--out", str(tmp_path / "feats")]) == 1  # fmt: skip
    assert not (tmp_path / "feats").exists()
    assert main(["predict", str(tmp_path / "nope.mp4"), "-c", str(tmp_path / "nope.pt"),
                 "--segments", "--out-dir", str(tmp_path / "segs")]) == 1  # fmt: skip
    assert not (tmp_path / "segs").exists()


def test_extract_goes_on_past_a_missing_input(tmp_path, capsys) -> None:
    """As predict: a missing argument is named, the other videos are extracted, exit 1."""
    import json
    from pathlib import Path

    import numpy as np

    from timesformer.cli import main
    from timesformer.data.synthetic import write_video
    from timesformer.models import TimeSformer, TimeSformerConfig
    from timesformer.models.weights import save_checkpoint

    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=2, embed_dim=16, depth=1,
                            num_heads=1, num_classes=2)  # fmt: skip
    save_checkpoint(TimeSformer(cfg).eval(), tmp_path / "m.pt")
    write_video(tmp_path / "ok.mp4", np.zeros((8, 32, 32, 3), np.uint8), 25.0)
    rc = main(["extract", str(tmp_path / "nope.mp4"), str(tmp_path / "ok.mp4"),
               "-c", str(tmp_path / "m.pt"), "--out", str(tmp_path / "f")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1 and "nope.mp4: no such file or folder" in err
    rows = [json.loads(x) for x in (tmp_path / "f" / "index.jsonl").read_text().splitlines()]
    assert [Path(r["video"]).name for r in rows] == ["ok.mp4"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["predict", "{v}", "-c", "{m}", "--topk", "0"], "--topk must be >= 1"),
        (["predict", "{v}", "-c", "{m}", "--every-clip"], "--every-clip: only with --long"),
        (["extract", "{v}", "-c", "{m}", "--out", "{o}", "--batch-size", "0"], "--batch-size"),
        (["export", "{m}", "--out", "{o}/m.onnx", "--atol", "-1"], "--atol must be >= 0"),
        (["serve", "-c", "{m}", "--max-batch", "0"], "--max-batch must be >= 1"),
        (["data", "lists", "--out", "{o}"], "give one source"),
        (["predict", "{v}", "-c", "{m}", "--views", "abc"], "argument --views: expected KxS"),
        (["predict", "{v}", "-c", "{m}", "--out", "{v}"], "is the same file as the input"),
        (["extract", "{v}", "-c", "{m}", "--out", "{o}", "--views", "0x1"], "K >= 1 clips"),
        (
            ["extract", "{v}", "-c", "{m}", "--out", "{o}", "--mode", "windows", "--views", "2x1"],
            "K must be 1",
        ),  # fmt: skip
        (["eval", "--config", "demo", "-c", "{m}", "--views", "1x2"], "S = 1 or 3 crops"),
        (["export", "{m}", "--out", "{o}/e.pt2", "--format", "onnx"], "suffix of exported"),
        (["data", "check", "{v}", "--out", "{v}"], "is the same file as the input"),
        (["models", "--attention-type", "spatial"], "invalid choice: 'spatial'"),
        (["study", "tabel1", "--out", "{o}"], "unknown study 'tabel1'"),
        (["convert", "{m}", "{o}/c.pt", "--num-frames", "0"], "--num-frames: expected a positive"),
    ],
)
def test_a_wrong_command_line_exits_2_whoever_finds_it(capsys, tmp_path, argv, words) -> None:
    """Exit 2 for a bad flag value or combination, found by argparse or after it (as argparse
    itself does); 1 stays for what the command meets (files, checkpoints, configs)."""
    video, model = tmp_path / "v.mp4", tmp_path / "m.pt"
    video.write_bytes(b"")  # never opened: the flags fail first
    model.write_bytes(b"")
    argv = [a.format(v=video, m=model, o=tmp_path / "out") for a in argv]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own check (a `type=` of the option)
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and err[0].endswith("--help)"), err
    assert not (tmp_path / "out").exists()


def test_matplotlib_missing_glyph_warnings_are_said_once() -> None:
    # one warning per missing character of a class name (4 for "ジャンプ") was spam
    import warnings

    from timesformer import cli

    old = warnings.formatwarning
    try:
        cli._compact_warnings("eval")
        msgs = [
            UserWarning(f"Glyph {ord(c)} missing from font(s) DejaVu Sans.") for c in "ジャンプ"
        ]
        out = [warnings.formatwarning(m, UserWarning, "x.py", 1) for m in msgs]
        out.append(warnings.formatwarning(UserWarning("other"), UserWarning, "x.py", 1))
    finally:
        warnings.formatwarning = old
    assert "".join(out).splitlines() == [
        "timesformer eval: warning: a label has characters the plot's font lacks: figures show "
        "them as boxes",
        "timesformer eval: warning: other",
    ]


def test_top_k_columns_line_up_with_wide_class_names(capsys) -> None:
    from types import SimpleNamespace

    from timesformer.commands import predict

    pred = SimpleNamespace(path="v.mp4", duration=2.0, views=3,
                           topk=[("ジャンプ", 0.45), ("walking dogs", 0.25)], clips=None)  # fmt: skip
    predict._print(pred)
    lines = [x for x in capsys.readouterr().out.splitlines()[1:] if x]
    cols = [predict.display_width(line[: line.index("%") - 6]) for line in lines]
    assert len(set(cols)) == 1, lines
