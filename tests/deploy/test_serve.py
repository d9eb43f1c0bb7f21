"""The real HTTP service on 127.0.0.1: routes, errors with their status, API keys, batching, load."""

from __future__ import annotations

import concurrent.futures as cf
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from timesformer.engine.predict import load_for_inference, predict

from .conftest import NAMES, render, start_server


def _post(url: str, path: Path, route: str = "/v1/predict", **fields) -> httpx.Response:
    with open(path, "rb") as f:
        return httpx.post(url + route, files={"file": (path.name, f)}, data=fields, timeout=60)


def test_predict_matches_the_command_line_record(server, checkpoint, video):
    _, url = server
    r = _post(url, video, views="1x3", topk="3")
    assert r.status_code == 200, r.text
    got = r.json()
    model, st = load_for_inference(checkpoint)
    ref = predict(model, video, views="1x3", topk=3, settings=st).to_dict()
    assert got["label"] == ref["label"] and got["label"] in NAMES
    assert [t["label"] for t in got["topk"]] == [t["label"] for t in ref["topk"]]
    assert np.allclose(
        [t["prob"] for t in got["topk"]], [t["prob"] for t in ref["topk"]], atol=1e-5
    )
    assert got["views"] == "1x3" and got["num_clips"] == 3


def test_long_gives_timeline_and_segments(server, video):
    r = _post(server[1], video, long="true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["clips"] and body["segments"]
    assert {"start", "end", "label", "score"} <= set(body["segments"][0])
    assert body["segments"][-1]["end"] == pytest.approx(body["clips"][-1]["end"])


def test_model_extract_explain_and_health(server, video):
    url = server[1]
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    m = httpx.get(url + "/v1/model").json()
    assert m["class_names"] == NAMES and m["preprocess"]["num_frames"] == 4
    e = _post(url, video, "/v1/extract").json()
    assert e["dim"] == 64 and len(e["embedding"]) == 64 and np.isfinite(e["embedding"]).all()
    assert e["path"] == e["video"] == video.name  # named as /v1/predict names it
    x = _post(url, video, "/v1/explain").json()
    assert x["label"] in NAMES and len(x["frames"]) == 4
    assert x["frames"][0].startswith("data:image/png;base64,")
    assert httpx.get(url + "/docs").status_code == 200
    assert "openapi" in httpx.get(url + "/openapi.json").json()


def test_errors_have_their_status_and_the_service_lives_on(server, tmp_path, video):
    url = server[1]
    png = tmp_path / "still.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video at all\n" * 10)
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (2 * 1024 * 1024))  # over --max-upload-mb 1
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[:2000])
    long = render(tmp_path / "long.mp4", seconds=40, fps=2, size=(32, 32))  # over --max-duration 30
    cases = [(png, 415, "image"), (text, 415, "not a video"), (big, 413, "MB limit"),
             (long, 413, "s long")]  # fmt: skip
    for path, status, words in cases:
        r = _post(url, path)
        assert r.status_code == status, (path.name, r.status_code, r.text)
        assert words in r.json()["error"] and r.json()["status"] == status
    r = _post(url, cut)
    assert r.status_code in (415, 422), r.text
    assert "timesformer-upload" not in r.text  # the server's temp folder stays private
    form = b'--b\r\nContent-Disposition: form-data; name="topk"\r\n\r\n3\r\n--b--\r\n'
    r = httpx.post(url + "/v1/predict", content=form,  # a form without its file: the same JSON
                   headers={"Content-Type": "multipart/form-data; boundary=b"})  # fmt: skip
    assert r.status_code == 422 and r.json()["status"] == 422 and "file" in r.json()["error"]
    r = _post(url, video, topk="abc")
    assert r.status_code == 422 and "topk" in r.json()["error"]
    r = _post(url, video, views="2000x3")  # refused before any decoding
    assert r.status_code == 422 and "at most 30" in r.json()["error"], r.text
    r = _post(url, video, route="/v1/extract", views="0x1")
    assert r.status_code == 422 and r.json()["status"] == 422
    for route, field, takes in [("/v1/explain", "topk", "it takes file"),
                                ("/v1/predict", "top_k", "file, views, topk, long"),
                                ("/v1/extract", "pool", "file, views")]:  # fmt: skip
        r = _post(url, video, route=route, **{field: "3"})  # a typo is named, not ignored
        assert r.status_code == 422 and f"unknown field '{field}'" in r.json()["error"], r.text
        assert takes in r.json()["error"]
    r = httpx.get(url + "/nope")
    assert r.status_code == 404 and r.json() == {"error": "Not Found", "status": 404}
    assert _post(url, video).status_code == 200  # still serving


def test_bad_start_says_why_and_never_claims_to_serve(checkpoint, tmp_path):
    import socket
    import subprocess
    import sys

    bad = tmp_path / "random.pt"
    bad.write_bytes(b"\x00\x01 not a checkpoint" * 10)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        cases = [(["-c", str(bad)], str(bad), 1), (["-c", str(checkpoint), "--port", busy], busy, 1),
                 (["-c", str(checkpoint), "--port", "99999"], "1..65535", 2),
                 (["-c", str(checkpoint), "--timeout", "-5"], "--timeout must be > 0", 2)]  # fmt: skip
        for extra, words, code in cases:  # 2: the command line is wrong; 1: what it names is
            cmd = [sys.executable, "-m", "timesformer.cli", "serve", "--json", *extra]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            assert r.returncode == code and r.stdout == "", (extra, r.stdout)
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and words in lines[0] and "serving" not in r.stderr, lines


def test_api_key(checkpoint, video):
    proc, url = start_server(checkpoint, env={"TIMESFORMER_API_KEY": "s3cret"})
    try:
        missing = _post(url, video)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        with open(video, "rb") as f:
            bad = httpx.post(url + "/v1/predict", files={"file": f},
                             headers={"Authorization": "Bearer nope"}, timeout=60)  # fmt: skip
        assert bad.status_code == 401
        with open(video, "rb") as f:
            ok = httpx.post(url + "/v1/predict", files={"file": f},
                            headers={"Authorization": "Bearer s3cret"}, timeout=60)  # fmt: skip
        assert ok.status_code == 200
        assert httpx.get(url + "/healthz").status_code == 200  # health stays open
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # the access log: a line per request, with why for an error, and never the key
    log = proc.stderr_path.read_text()
    lines = [ln for ln in log.splitlines() if " /v1/predict " in ln]
    assert len(lines) == 3, log
    assert " 127.0.0.1 POST /v1/predict 401 " in lines[0] and "wrong API key" in lines[0]
    assert " POST /v1/predict 200 " in lines[2] and lines[2].endswith(" ms")
    assert "s3cret" not in log and "nope" not in log


def test_quiet_serve_logs_no_requests(checkpoint, video):
    proc, url = start_server(checkpoint, "--quiet")
    try:
        assert _post(url, video, topk="2").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    log = proc.stderr_path.read_text()
    assert "serving" in log and "/v1/predict" not in log and "/healthz" not in log, log


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_bounded_load_batches_and_keeps_memory(server, video):
    """8 concurrent clients x 24 requests on loopback: no errors, shared passes, flat memory."""
    proc, url = server
    body = video.read_bytes()

    def one(_: int) -> float:
        t0 = time.perf_counter()
        r = httpx.post(url + "/v1/predict", files={"file": ("v.mp4", body)},
                       data={"views": "1x1"}, timeout=60)  # fmt: skip
        assert r.status_code == 200, r.text
        return time.perf_counter() - t0

    def round_() -> tuple[list[float], float]:
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(8) as pool:
            lat = list(pool.map(one, range(24)))
        return lat, time.perf_counter() - t0

    round_()  # warm-up: allocator and caches settle
    rss0 = _rss_kb(proc.pid)
    lat, wall = round_()
    rss1 = _rss_kb(proc.pid)
    lat.sort()
    print(f"load: {24 / wall:.1f} req/s, p50 {1000 * lat[11]:.0f} ms, p99 {1000 * lat[-1]:.0f} ms,"
          f" rss {rss0 // 1024} -> {rss1 // 1024} MB")  # fmt: skip
    assert rss1 - rss0 < 64 * 1024, "memory grew by more than 64 MB over an equal round"
    stats = httpx.get(url + "/v1/model").json()["batching"]
    assert stats["mean_batch"] > 1.0, "concurrent requests should share forward passes"


def test_batcher_gives_each_caller_its_rows():
    from timesformer.deploy.batching import BatchedModel, Batcher

    from .conftest import tiny_model

    model = tiny_model()
    batcher = Batcher(model, max_batch=6, max_wait_ms=50)
    served = BatchedModel(batcher)
    xs = [torch.randn(n, 3, 4, 32, 32) for n in (1, 2, 3)]
    with cf.ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(served, xs))
    batcher.close()
    with torch.no_grad():
        for x, y in zip(xs, outs):
            assert torch.allclose(y, model(x), atol=1e-5)
    assert batcher.stats.batches < 3


def test_an_expired_request_queues_no_more_clips():
    from timesformer.deploy.batching import BatchedModel, Batcher, RequestExpired

    from .conftest import tiny_model

    batcher = Batcher(tiny_model(), max_batch=4, max_wait_ms=1)
    x = torch.randn(1, 3, 4, 32, 32)
    assert BatchedModel(batcher, deadline=time.monotonic() + 60)(x).shape[0] == 1
    late = BatchedModel(batcher, deadline=time.monotonic() - 1)
    with pytest.raises(RequestExpired):
        late(x)
    clips = batcher.stats.clips
    batcher.close()
    assert clips == 1  # the expired call never reached the shared pass


def test_decode_errors_do_not_show_the_servers_temp_folder():
    from timesformer.deploy.serve import _private

    msg = "near frame 40 (InvalidDataError: input: '/tmp/timesformer-upload-ab12cd/video.mp4')"
    assert _private(msg) == "near frame 40 (InvalidDataError: input: 'video.mp4')"


def test_long_takes_one_crop_per_clip_whatever_the_checkpoint_views(tmp_path, video):
    """A checkpoint with 2x1 test views: long=true uses 1x1 as `predict --long` does."""
    from timesformer.models.preprocess import Preprocess
    from timesformer.models.weights import save_checkpoint

    from .conftest import tiny_model

    ckpt = tmp_path / "views2.pt"
    pre = Preprocess.for_geometry(4, 32, sampling_rate=3, class_names=NAMES)
    save_checkpoint(tiny_model(), ckpt, preprocess={**pre.to_dict(), "test_views": [2, 1]})
    proc, url = start_server(ckpt)
    try:
        r = _post(url, video, long="true")
        assert r.status_code == 200, r.text
        assert r.json()["segments"]
        assert _post(url, video).json()["views"] == "2x1"  # the checkpoint's, without long
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_model_without_a_head_serves_embeddings_and_refuses_to_classify(tmp_path, video):
    from timesformer.models.weights import save_checkpoint

    from .conftest import tiny_model

    model = tiny_model()
    model.reset_classifier(0)
    ckpt = save_checkpoint(model, tmp_path / "headless.pt")
    proc, url = start_server(ckpt)
    try:
        for route, fields in (("/v1/predict", {}), ("/v1/predict", {"long": "true"}),
                              ("/v1/explain", {})):  # fmt: skip
            r = _post(url, video, route, **fields)
            assert r.status_code == 422, (route, r.text)
            assert "no classification head" in r.json()["error"] and "/v1/extract" in r.text
        e = _post(url, video, "/v1/extract")
        assert e.status_code == 200 and e.json()["dim"] == 64
        m = httpx.get(url + "/v1/model").json()
        assert m["config"]["num_classes"] == 0 and m["class_names"] == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    log = proc.stderr_path.read_text()
    assert "warning" in log and "no classification head" in log and "Traceback" not in log, log
