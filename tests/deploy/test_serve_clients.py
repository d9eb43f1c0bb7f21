"""The real service against careless or hostile clients: bodies it must refuse, and how."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from .conftest import start_server
from .rawhttp import chunked_upload, connect, part_head, part_tail, request_head

ROUTES = ("/v1/predict", "/v1/extract", "/v1/explain")


def test_a_chunked_upload_past_the_limit_is_cut_off_early(server):
    """No Content-Length to refuse up front: the body is counted and the rest never read."""
    sent, response = chunked_upload(server[1], "/v1/predict", total_mb=64)  # limit: 1 MB
    assert b" 413 " in response.split(b"\r\n")[0], response[:200]
    assert b'"upload is over the 1 MB limit (--max-upload-mb)"' in response
    assert sent < 32, f"the server read {sent} MB of a 1 MB limit before answering"


def test_bodies_that_are_not_multipart_are_415_naming_the_form(server, video):
    url = server[1]
    bodies = [({"content": b""}, "no Content-Type"),
              ({"json": {"file": "clip.mp4"}}, "application/json"),
              ({"data": {"file": "clip.mp4"}}, "application/x-www-form-urlencoded"),
              ({"content": video.read_bytes(), "headers": {"Content-Type": "video/mp4"}},
               "video/mp4")]  # fmt: skip
    for route in ROUTES:
        for kw, got in bodies:
            r = httpx.post(url + route, timeout=30, **kw)
            assert r.status_code == 415, (route, got, r.text)
            assert r.json() == {
                "status": 415,
                "error": "expected multipart/form-data with the "
                f"video in field 'file' (curl -F file=@clip.mp4); got {got}",
            }
    assert httpx.post(url + "/v1/model").status_code == 405  # not an upload route


def test_form_mistakes_say_what_was_expected_in_one_log_line(server, video):
    proc, url = server
    r = httpx.post(url + "/v1/predict", files={"file": (None, "clip.mp4")})  # -F file=clip.mp4
    assert r.status_code == 422, r.text
    assert "expected an uploaded file" in r.json()["error"] and "class" not in r.text
    two = [("file", ("a.mp4", video.read_bytes())), ("file", ("b.mp4", video.read_bytes()))]
    r = httpx.post(url + "/v1/extract", files=two, timeout=30)
    assert r.status_code == 422 and r.json()["error"] == "2 files sent; one per request"
    bad = {"Content-Type": "multipart/form-data; boundary=xyz"}
    r = httpx.post(url + "/v1/predict", content=b"\0" * 100, headers=bad)
    assert r.status_code == 400 and r.json()["status"] == 400
    time.sleep(0.5)  # the access line is written after the response
    lines = proc.stderr_path.read_text().splitlines()
    stray = [ln for ln in lines if not re.match(r"\d{4}-\d\d-\d\dT|serving ", ln)]
    assert not stray, stray  # nothing printed beside the one line per request


def test_hanging_up_mid_upload_is_logged_and_leaves_no_temp_files(checkpoint, video, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc, url = start_server(checkpoint, env={"TMPDIR": str(tmp)})
    try:
        data = video.read_bytes()
        body = part_head() + data + part_tail()
        for cut in (len(body) // 2, len(body)):  # mid-upload; and whole, then gone at once
            sock = connect(url)
            sock.sendall(request_head(url, "/v1/predict", len(body)) + body[:cut])
            time.sleep(0.2)
            sock.close()
        png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
        assert httpx.post(url + "/v1/predict", files={"file": ("x.png", png)}).status_code == 415
        ok = httpx.post(url + "/v1/predict", files={"file": ("v.mp4", data)}, timeout=60)
        assert ok.status_code == 200, ok.text  # the batcher is not wedged
        time.sleep(1.0)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    log = Path(proc.stderr_path).read_text()
    assert "POST /v1/predict 400" in log and "the client disconnected before the upload" in log
    assert "error parsing the body" not in log, log
    assert not list(tmp.glob("timesformer-upload-*")), list(tmp.iterdir())
