"""Run configuration: recipes, overrides, validation errors, schedule and optimizer groups."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from timesformer.engine.config import (
    RunConfig,
    find_config,
    list_recipes,
    load_config,
    parse_views,
    recipes_dir,
    resolve,
    save_config,
    valid_keys,
)
from timesformer.engine.optim import LRSchedule, build_optimizer, param_groups
from timesformer.models import TimeSformer, get_config

REPO = Path(__file__).resolve().parents[2]
RECIPES = ("k400", "k400_hr", "k400_l", "ssv2", "demo")


def test_bundled_recipes_match_top_level_configs() -> None:
    assert set(RECIPES) <= set(list_recipes())
    for name in list_recipes():
        top = REPO / "configs" / f"{name}.yaml"
        assert top.is_file(), f"configs/{name}.yaml missing"
        assert top.read_text() == (recipes_dir() / f"{name}.yaml").read_text(), name
    assert sorted(p.stem for p in (REPO / "configs").glob("*.yaml")) == list_recipes()


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_load_and_resolve(name: str) -> None:
    cfg = resolve(load_config(name))
    assert cfg.data.num_frames == cfg.model.num_frames
    assert cfg.data.crop_size == cfg.model.img_size
    get_config(cfg.model.name, num_classes=cfg.model.num_classes)  # a valid preset


def test_official_recipe_values() -> None:
    """PAPER.md: SGD momentum 0.9 Nesterov, wd 1e-4, lr 0.005, 15 epochs, x0.1 at 11 and 14,
    global batch 64, mean 0.45 / std 0.225, jitter 256-320 (HR 448-512), flip except SSv2."""
    for name in ("k400", "k400_hr", "k400_l", "ssv2"):
        c = load_config(name)
        o, t, d = c.optim, c.train, c.data
        assert (o.name, o.momentum, o.nesterov) == ("sgd", 0.9, True)
        assert (o.lr, o.weight_decay, o.schedule, o.steps, o.gamma) == (
            0.005,
            1e-4,
            "steps",
            [11, 14],
            0.1,
        )
        assert o.warmup_epochs == 0 and t.amp == "off"
        assert (t.epochs, t.global_batch_size) == (15, 64)
        assert d.mean == [0.45] * 3 and d.std == [0.225] * 3
        assert d.test_views == "1x3"
    k400, hr, large, ssv2 = (load_config(n) for n in ("k400", "k400_hr", "k400_l", "ssv2"))
    assert (k400.model.num_frames, k400.model.img_size, k400.data.sampling_rate) == (8, 224, 32)
    assert k400.data.train_jitter == [256, 320] and k400.data.flip
    assert (hr.model.num_frames, hr.model.img_size, hr.data.train_jitter) == (16, 448, [448, 512])
    assert (large.model.num_frames, large.data.sampling_rate) == (96, 4)
    assert ssv2.model.num_classes == 174 and ssv2.data.sampler == "segments"
    assert ssv2.data.channel_order == "bgr" and not ssv2.data.flip


def test_overrides_are_typed() -> None:
    c = load_config(
        "k400",
        [
            "optim.lr=0.01",
            "optim.name=adamw",
            "train.amp=bf16",
            "data.test_views=2x3",
            "data.train_jitter=[300, 400]",
            "train.global_batch_size=null",
            "model.grad_checkpointing=true",
            "output_dir=/tmp/x",
            "data.labels=123",
        ],
    )
    assert c.optim.lr == 0.01 and isinstance(c.optim.lr, float)
    assert c.optim.name == "adamw" and c.train.amp == "bf16"
    assert c.data.test_views == "2x3" and parse_views(c.data.test_views) == (2, 3)
    assert c.data.train_jitter == [300, 400]
    assert c.train.global_batch_size is None
    assert c.model.grad_checkpointing is True
    assert c.output_dir == "/tmp/x"
    assert c.data.labels == "123"  # a str key keeps a numeric-looking value as text
    c2 = load_config("k400", ["optim.weight_decay=0"])  # an int where a float goes
    assert c2.optim.weight_decay == 0.0 and isinstance(c2.optim.weight_decay, float)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("optim.lrr=0.1", "unknown key 'optim.lrr'. Did you mean 'optim.lr'?"),
        ("lr=0.1", "Did you mean 'optim.lr'?"),
        ("train.epoch=3", "Did you mean 'train.epochs'?"),
        ("optim.name=sdg", "optim.name='sdg' is not one of 'sgd', 'adamw'. Did you mean 'sgd'?"),
        ("train.amp=fp61", "Did you mean 'fp16'?"),
        ("train.epochs=ten", "train.epochs='ten' is not valid; expected int"),
        ("train.epochs=0", "train.epochs=0 is out of range"),
        ("optim.lr=-1", "optim.lr=-1.0 is out of range"),
        ("data.test_views=3", "is not 'KxS'"),
        ("data.mean=[0.5, 0.5]", "data.mean"),
        ("model.name=timesformer_tyni", "Did you mean 'timesformer_tiny'?"),
        ("model.attention_type=divided", "model.attention_type='divided'"),
        ("train.global_batch_size=60", "not a multiple of train.batch_size"),
        ("optim.lr", "is not key=value"),
    ],
)
def test_bad_overrides_name_the_key(override: str, fragment: str) -> None:
    with pytest.raises(ValueError) as e:
        load_config("k400", [override])
    assert fragment in str(e.value)


def test_bad_file_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("optim:\n  lr: 0.1\n  momentun: 0.9\n")
    with pytest.raises(
        ValueError, match=r"bad\.yaml: unknown key 'optim.momentun'.*'optim.momentum'"
    ):
        load_config(p)
    p.write_text("train:\n  epochs: [1\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: not valid YAML"):
        load_config(p)
    p.write_text("modle:\n  name: timesformer_tiny\n")
    with pytest.raises(ValueError, match="Did you mean 'model"):
        load_config(p)
    with pytest.raises(FileNotFoundError, match="Did you mean 'k400'"):
        find_config("k40")


def test_exponent_floats_read_as_numbers(tmp_path: Path) -> None:
    """1e-3 is YAML 1.2's float (PyYAML's 1.1 rules read it as the string '1e-3')."""
    c = load_config(None, ["optim.lr=1e-3", "optim.weight_decay=5E-5", "optim.min_lr=1.5e-6"])
    assert (c.optim.lr, c.optim.weight_decay, c.optim.min_lr) == (1e-3, 5e-5, 1.5e-6)
    p = tmp_path / "exp.yaml"
    p.write_text("optim:\n  lr: 2e-4\n  weight_decay: 1e-2\n")
    c = load_config(p)
    assert c.optim.lr == 2e-4 and c.optim.weight_decay == 1e-2
    # strings that only look numeric stay strings where a string goes
    c = load_config(None, ["data.test_views=1x3", "output_dir=1e3"])
    assert c.data.test_views == "1x3" and c.output_dir == "1e3"
    with pytest.raises(ValueError, match="train.epochs=1000.0 is not valid; expected int"):
        load_config(None, ["train.epochs=1e3"])


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN"])
def test_non_finite_floats_are_refused(value: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^override: optim.lr=.* expected a finite number"):
        load_config(None, [f"optim.lr={value}"])
    p = tmp_path / "inf.yaml"
    p.write_text(f"optim:\n  clip_grad: {value}\n")
    with pytest.raises(ValueError, match=r"inf\.yaml: optim.clip_grad=.* a finite number"):
        load_config(p)


def test_config_file_problems_name_the_file(tmp_path: Path) -> None:
    dup = tmp_path / "dup.yaml"
    dup.write_text("optim:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ValueError, match=r"dup\.yaml: not valid YAML: line 3.*'lr' is given twice"):
        load_config(dup)
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(b"PK\x03\x04\xff\xfe\x00\x81 binary")
    with pytest.raises(ValueError, match=r"weights\.yaml: not a text file; expected a YAML"):
        load_config(binary)
    with pytest.raises(FileNotFoundError, match="is a folder; expected a YAML file"):
        load_config(tmp_path)
    top = tmp_path / "top.yaml"
    top.write_text("modle:\n  name: timesformer_tiny\n")
    with pytest.raises(ValueError, match=r"unknown key 'modle'\. Did you mean 'model'\?"):
        load_config(top)


def test_a_folder_named_like_a_recipe_does_not_hide_it(tmp_path: Path, monkeypatch) -> None:
    """A bare recipe name beside a folder of that name is the recipe; an explicit path is the
    folder (and refused as one)."""
    monkeypatch.chdir(tmp_path)
    for name in ("k400", "demo", "nowhere"):
        (tmp_path / name).mkdir()
    assert find_config("k400") == recipes_dir() / "k400.yaml"
    assert load_config("demo").model.name == load_config(recipes_dir() / "demo.yaml").model.name
    for spec in ("./k400", "k400/", str(tmp_path / "k400"), "nowhere"):
        with pytest.raises(FileNotFoundError, match="is a folder; expected a YAML file"):
            find_config(spec)
    (tmp_path / "ssv2.yaml").mkdir()  # a name with .yaml is a path: the folder is refused
    with pytest.raises(FileNotFoundError, match="is a folder"):
        find_config("ssv2.yaml")
    mine = tmp_path / "mine"
    mine.write_text("train:\n  epochs: 3\n")  # a bare name that is a file: the file, as before
    assert find_config("mine") == Path("mine")


def test_train_print_config_beside_a_folder_named_k400(tmp_path, monkeypatch, capsys) -> None:
    from timesformer.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "k400").mkdir()
    assert main(["train", "--config", "k400", "--print-config"]) == 0
    assert "timesformer_base" in capsys.readouterr().out


def test_saved_config_round_trips(tmp_path: Path) -> None:
    c = resolve(load_config("ssv2", ["optim.lr=0.02", "data.root=/videos"]))
    path = save_config(c, tmp_path / "run" / "config.yaml")
    first = path.read_text().splitlines()[0]  # says what its relative paths are relative to
    assert first.startswith("# relative paths below are relative to ") and str(Path.cwd()) in first
    again = load_config(path)
    assert again == c
    assert isinstance(RunConfig.from_dict(c.to_dict()), RunConfig)
    assert "optim.lr" in valid_keys() and "output_dir" in valid_keys()


def _sched(**kw: float | str | list[int]) -> tuple[torch.optim.Optimizer, LRSchedule]:
    cfg = load_config(None, [f"optim.{k}={v}" for k, v in kw.items()]).optim
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    return opt, LRSchedule(opt, cfg, epochs=15, steps_per_epoch=10)


def test_step_schedule_drops_at_epochs_11_and_14() -> None:
    _, s = _sched(lr=0.005, schedule="steps", steps="[11, 14]")
    lrs = {e: 0.005 * s.factor(e * 10) for e in range(15)}
    assert lrs[0] == lrs[10] == 0.005
    assert lrs[11] == pytest.approx(0.0005) and lrs[13] == pytest.approx(0.0005)
    assert lrs[14] == pytest.approx(0.00005)
    assert s.factor(109) == 1.0  # still epoch 10.9


def test_warmup_then_cosine() -> None:
    opt, s = _sched(lr=0.1, schedule="cosine", warmup_epochs=1, warmup_start_factor=0.0)
    assert opt.param_groups[0]["lr"] == 0.0  # step 0
    s.set_step(5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)  # half way through warm-up
    s.set_step(10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)  # cosine starts at the peak
    s.set_step(80)  # epoch 8 of the 14 cosine epochs after warm-up: (8 - 1) / 14 = 0.5
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    s.set_step(150)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    state = s.state_dict()
    _, s2 = _sched(lr=0.1, schedule="cosine", warmup_epochs=1, warmup_start_factor=0.0)
    s2.load_state_dict(state)
    assert s2.get_last_lr() == s.get_last_lr()


def test_no_decay_on_norms_biases_embeddings() -> None:
    model = TimeSformer(get_config("timesformer_tiny", depth=1, img_size=32, num_frames=2))
    groups = param_groups(model, 0.05, True)
    decay = {id(p) for p in groups[0]["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for p in groups[1]["params"]}
    assert {"pos_embed", "cls_token", "time_embed", "norm.weight", "head.bias"} <= no_decay
    assert all(p.ndim >= 2 for p in groups[0]["params"])
    assert names[id(model.head.weight)] not in no_decay and id(model.head.weight) in decay
    assert groups[1]["weight_decay"] == 0.0 and groups[0]["weight_decay"] == 0.05
    assert len(param_groups(model, 0.05, False)) == 1
    cfg = load_config(None, ["optim.name=adamw", "optim.no_decay_norm_bias_embed=true"]).optim
    opt = build_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 2
    sgd = build_optimizer(model, load_config("k400").optim)
    assert sgd.param_groups[0]["nesterov"] and sgd.param_groups[0]["momentum"] == 0.9


def test_a_key_in_the_wrong_section_and_an_empty_output_dir() -> None:
    from timesformer.engine.config import ConfigError

    with pytest.raises(ConfigError, match=r"unknown key 'train.lr'\. Did you mean 'optim.lr'\?"):
        load_config(None, ["train.lr=0.1"])
    with pytest.raises(ConfigError, match=r"'optim.lrr'\. Did you mean 'optim.lr'\?"):
        load_config(None, ["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match="output_dir is empty"):
        load_config(None, ["output_dir="])


def test_num_classes_and_names_come_from_the_labels_beside_a_list(tmp_path) -> None:
    # `timesformer data lists` writes train.csv with labels.txt beside it: the head is sized
    # and named from it (it was the preset's 400 Kinetics classes)
    from timesformer.engine.build import fill_num_classes, label_names
    from timesformer.engine.config import RunConfig

    (tmp_path / "train.csv").write_text("path,label\na.mp4,0\nb.mp4,2\n")
    (tmp_path / "labels.txt").write_text("jump\nrun\nwalk\n")
    cfg = RunConfig()
    cfg.data.train_list = str(tmp_path / "train.csv")
    cfg.model.num_classes = None
    assert label_names(cfg) == ["jump", "run", "walk"]
    assert fill_num_classes(cfg).model.num_classes == 3
