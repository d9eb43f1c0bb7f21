"""`--compile` for predict / extract: inductor with frozen weights, on batches of a fixed size."""

from __future__ import annotations

import pytest
import torch

from timesformer.cli import main
from timesformer.engine import runtime
from timesformer.engine.runtime import _fixed_rows, compile_for_inference
from timesformer.models import TimeSformer, TimeSformerConfig


def _tiny() -> TimeSformer:
    torch.manual_seed(0)
    cfg = TimeSformerConfig(img_size=32, patch_size=16, num_frames=2, embed_dim=32, depth=1,
                            num_heads=2, num_classes=3)  # fmt: skip
    return TimeSformer(cfg).eval()


def test_fixed_rows_pads_the_last_batch_and_drops_its_outputs() -> None:
    seen = []

    def fn(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        seen.append(x.shape[0])
        return x * scale

    run = _fixed_rows(fn, 4)
    x = torch.arange(10.0).view(10, 1)
    assert torch.equal(run(x, scale=2.0), x * 2)
    assert seen == [4, 4, 4]  # 10 inputs: 4 + 4 + (2 padded to 4)
    assert torch.equal(run(x[:1]), x[:1]) and seen[-1] == 4


def test_compiled_model_matches_eager_on_any_batch_size() -> None:
    model = _tiny()
    xs = {
        n: torch.randn(n, 3, 2, 32, 32, generator=torch.Generator().manual_seed(n)) for n in (1, 3)
    }
    with torch.no_grad():
        ref = {n: (model(x), model.forward_features(x)) for n, x in xs.items()}
        compile_for_inference(model, torch.device("cpu"), rows=2)
        for n, x in xs.items():  # one graph per function: every call is on 2 inputs
            torch.testing.assert_close(model(x), ref[n][0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(model.forward_features(x), ref[n][1], atol=1e-5, rtol=1e-5)


def test_no_compiler_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    from timesformer.models.weights import save_checkpoint

    save_checkpoint(_tiny(), tmp_path / "m.pt")
    video = tmp_path / "v.mp4"
    from timesformer.data import write_video

    write_video(video, torch.zeros(4, 32, 32, 3, dtype=torch.uint8).numpy(), 8.0)
    monkeypatch.setattr(runtime.shutil, "which", lambda name: None)
    assert main(["predict", str(video), "-c", str(tmp_path / "m.pt"), "--compile"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--compile needs a C++ compiler" in err[0], err
    with pytest.raises(Exception, match="C\\+\\+ compiler"):
        compile_for_inference(_tiny(), torch.device("cpu"), rows=2)
