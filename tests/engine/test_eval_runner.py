"""evaluate() end to end on an in-memory view dataset: aggregation, failures, DDP gather."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch
from torch import nn

from timesformer.engine.evaluate import evaluate, write_eval_outputs
from timesformer.models import TimeSformer, TimeSformerConfig


class MeanColour(nn.Module):
    """A stand-in classifier whose logits are the clip's mean value per channel: (B, 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.config = TimeSformerConfig(
            img_size=16, patch_size=16, num_frames=1, embed_dim=8, depth=1, num_heads=1,
            num_classes=3,
        )  # fmt: skip
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3, 4)) + self.dummy  # (B, 3)


class Views(torch.utils.data.Dataset):
    """Videos x views; view (v, k) is a constant clip whose per-channel values are given."""

    def __init__(self, logits: dict[tuple[int, int], list[float]], labels: list[int],
                 broken: set[int] = frozenset(), views: int = 2) -> None:  # fmt: skip
        self.logits, self.labels, self.broken, self.views = logits, labels, broken, views
        self.test_views = (1, views)

    @property
    def num_videos(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return len(self.labels) * self.views

    def __getitem__(self, i: int) -> dict:
        v, k = divmod(i, self.views)
        bad = v in self.broken
        values = torch.tensor(self.logits.get((v, k), [0.0, 0.0, 0.0]))
        video = torch.zeros(3, 1, 4, 4) if bad else values.view(3, 1, 1, 1).expand(3, 1, 4, 4)
        return {
            "video": video.clone(),
            "label": self.labels[v],
            "index": v,
            "view": k,
            "path": f"v{v}.mp4",
            "error": "moov atom not found" if bad else "",
            "traceback": f"Traceback (worker): v{v}.mp4 view {k}\n" if bad else "",
        }


def _dataset() -> Views:
    logits = {
        (0, 0): [3.0, 0.0, 0.0],  # video 0, class 0: both views right
        (0, 1): [2.0, 1.0, 0.0],
        (1, 0): [3.0, 0.0, 0.0],  # video 1, class 1: summed logits say 0, mean softmax says 1
        (1, 1): [0.0, 1.0, -9.0],
        (2, 0): [0.0, 0.0, 5.0],  # video 2, class 2
        (2, 1): [0.0, 0.0, 5.0],
    }
    logits[(1, 2)] = [0.0, 1.0, -9.0]
    ds = Views(logits, labels=[0, 1, 2, 1], broken={3}, views=3)
    return ds


def test_evaluate_aggregates_views_and_reports_broken_videos(tmp_path) -> None:
    ds = _dataset()
    model = MeanColour()
    names = ["zero", "one", "two"]
    res = evaluate(model, ds, batch_size=4, labels=names)
    assert res.views == "1x3"
    assert res.views_per_video.tolist() == [3, 3, 3, 0]
    assert res.targets.tolist() == [0, 1, 2, 1]
    assert res.paths == ["v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4"]
    assert res.metrics["num_videos"] == 3  # the broken video is out of the metrics...
    assert res.failed == [{"path": "v3.mp4", "error": "moov atom not found", "views_ok": 0}]
    assert res.metrics["top1"] == pytest.approx(1.0)  # ...and listed, not dropped
    assert res.tracebacks == {"v3.mp4": "Traceback (worker): v3.mp4 view 0\n"}  # for --debug
    assert "Traceback" not in repr(res.summary())  # not in the JSON
    summed = evaluate(model, ds, batch_size=4, labels=names, aggregate="sum_logits")
    # video 1: logits 3+0+0 = 3 for class 0 vs 0+1+1 = 2 for class 1
    assert summed.video_scores[1].tolist() == pytest.approx([3.0, 2.0, -18.0])
    assert summed.metrics["top1"] == pytest.approx(2 / 3)
    assert summed.metrics["mean_class_accuracy"] == pytest.approx(2 / 3)
    expected = torch.tensor([[3.0, 0, 0], [0, 1, -9], [0, 1, -9]]).softmax(1).mean(0)
    assert torch.allclose(res.video_scores[1].float(), expected, atol=1e-6)
    files = write_eval_outputs(res, tmp_path)
    assert "v3.mp4\tmoov atom not found" in open(files["failed"]).read()


def test_evaluate_real_model_matches_direct_forward() -> None:
    cfg = TimeSformerConfig(
        img_size=32, patch_size=16, num_frames=2, embed_dim=16, depth=1, num_heads=2,
        num_classes=4, drop_path_rate=0.0,
    )  # fmt: skip
    model = TimeSformer(cfg).train()
    clips = torch.randn(2, 2, 3, 2, 32, 32)  # (videos, views, 3, T, H, W)

    class Clips(torch.utils.data.Dataset):
        num_videos = 2
        test_views = (2, 1)

        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> dict:
            v, k = divmod(i, 2)
            return {"video": clips[v, k], "label": v, "index": v, "view": k,
                    "path": f"{v}.mp4", "error": ""}  # fmt: skip

    res = evaluate(model, Clips(), batch_size=3)
    assert model.training  # restored
    with torch.no_grad():
        model.eval()
        probs = model(clips.flatten(0, 1)).softmax(1).view(2, 2, 4).mean(1)  # (V, C)
    assert torch.allclose(res.video_scores.float(), probs, atol=1e-5)
    assert res.labels == ["class_0", "class_1", "class_2", "class_3"]


def test_evaluate_under_ddp_gathers_every_view(tmp_path) -> None:
    """Two gloo processes each see half the views; both must report every video and view."""
    single = evaluate(MeanColour(), _dataset(), batch_size=2, aggregate="sum_logits")
    torch.save({"scores": single.video_scores, "counts": single.views_per_video,
                "failed": single.failed, "tb": single.tracebacks}, tmp_path / "single.pt")  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "ddp_eval.py"
    script.write_text(
        "import importlib.util, os, sys, torch\n"
        f"spec = importlib.util.spec_from_file_location('t', {__file__!r})\n"
        "t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t)\n"
        "def work(rank, out):\n"
        "    torch.set_num_threads(1)\n"
        f"    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT='{port}')\n"
        "    torch.distributed.init_process_group('gloo', rank=rank, world_size=2)\n"
        "    res = t.evaluate(t.MeanColour(), t._dataset(), batch_size=2, aggregate='sum_logits')\n"
        "    torch.save({'scores': res.video_scores, 'counts': res.views_per_video,\n"
        "                'failed': res.failed, 'seen': len(res.paths),\n"
        "                'tb': res.tracebacks}, f'{out}.{rank}')\n"
        "    torch.distributed.destroy_process_group()\n"
        "if __name__ == '__main__':\n"
        "    torch.multiprocessing.spawn(work, args=(sys.argv[1],), nprocs=2)\n"
    )
    out = str(tmp_path / "rank")
    proc = subprocess.run([sys.executable, str(script), out], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    ref = torch.load(tmp_path / "single.pt")
    for rank in range(2):
        r = torch.load(f"{out}.{rank}")
        assert r["counts"].tolist() == ref["counts"].tolist() == [3, 3, 3, 0]
        assert torch.allclose(r["scores"], ref["scores"])
        assert r["failed"] == ref["failed"]
        assert set(r["tb"]) == set(ref["tb"]) == {"v3.mp4"}  # gathered across the ranks
        assert r["tb"]["v3.mp4"].startswith("Traceback (worker): v3.mp4")
