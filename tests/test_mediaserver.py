"""The loopback media server: ranges, the no-range mode, latency bookkeeping, every fault."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request

import pytest

from cadenza.testing.mediaserver import Fault, MediaServer

DATA = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture
def root(tmp_path):
    (tmp_path / "clipAAAAAAA.m4a").write_bytes(DATA)
    (tmp_path / "clipAAAAAAA.wav").write_bytes(DATA)
    return tmp_path


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_serves_files_with_ranges_and_content_types(root):
    with MediaServer(root) as srv:
        assert srv.base_url.startswith("http://127.0.0.1:")
        url = srv.url_template("m4a").format(ytid="clipAAAAAAA")
        status, headers, body = get(url)
        assert (status, body, headers["Content-Type"], headers["Accept-Ranges"]) == (200, DATA, "audio/mp4", "bytes")
        status, headers, body = get(url, {"Range": "bytes=100-199"})
        assert status == 206 and body == DATA[100:200]
        assert headers["Content-Range"] == f"bytes 100-199/{len(DATA)}"
        assert get(url, {"Range": "bytes=-10"})[2] == DATA[-10:]
        assert get(url, {"Range": "bytes=10000-"})[2] == DATA[10000:]
        with pytest.raises(urllib.error.HTTPError) as e:
            get(url, {"Range": f"bytes={len(DATA)}-"})
        assert e.value.code == 416
        assert get(srv.url_template("wav").format(ytid="clipAAAAAAA"))[1]["Content-Type"] == "audio/wav"
        assert srv.requests["clipAAAAAAA.m4a"] == 5


def test_no_range_mode_ignores_range_headers(root):
    with MediaServer(root, range_support=False) as srv:
        status, headers, body = get(srv.url_template().format(ytid="clipAAAAAAA"), {"Range": "bytes=100-199"})
        assert status == 200 and body == DATA and "Accept-Ranges" not in headers


def test_missing_files_and_path_escapes_are_404(root):
    with MediaServer(root) as srv:
        for path in ("/media/nope.m4a", "/media/../etc/passwd", "/other/clipAAAAAAA.m4a", "/media/.hidden"):
            with pytest.raises(urllib.error.HTTPError) as e:
                get(srv.base_url + path)
            assert e.value.code == 404, path


@pytest.mark.parametrize("code", ["404", "403", "410", "500"])
def test_status_faults(root, code):
    with MediaServer(root, faults={"clipAAAAAAA": code}) as srv:
        for ext in ("m4a", "wav"):  # a stem's fault covers every format
            with pytest.raises(urllib.error.HTTPError) as e:
                get(srv.url_template(ext).format(ytid="clipAAAAAAA"))
            assert e.value.code == int(code)


def test_429_then_200(root):
    with MediaServer(root, faults={"clipAAAAAAA": Fault("429-then-200", times=2)}) as srv:
        url = srv.url_template().format(ytid="clipAAAAAAA")
        for _ in range(2):
            with pytest.raises(urllib.error.HTTPError) as e:
                get(url)
            assert e.value.code == 429
        assert get(url)[2] == DATA
        srv.set_fault("clipAAAAAAA", "429-then-200")  # setting a fault again resets its budget
        with pytest.raises(urllib.error.HTTPError):
            get(url)
        assert get(url)[2] == DATA


def test_body_faults(root):
    faults = {"clipAAAAAAA.m4a": "truncated", "clipAAAAAAA.wav": "html"}
    with MediaServer(root, faults=faults) as srv:
        with pytest.raises(http.client.IncompleteRead) as e:
            get(srv.url_template("m4a").format(ytid="clipAAAAAAA"))
        assert len(e.value.partial) == len(DATA) // 2
        status, headers, body = get(srv.url_template("wav").format(ytid="clipAAAAAAA"))
        assert headers["Content-Type"].startswith("text/html") and body.startswith(b"<!DOCTYPE html>")


def test_oversized_and_drop(root):
    with MediaServer(root, faults={"clipAAAAAAA.m4a": "oversized", "clipAAAAAAA.wav": "drop"}) as srv:
        with urllib.request.urlopen(srv.url_template("m4a").format(ytid="clipAAAAAAA"), timeout=10) as resp:
            assert int(resp.headers["Content-Length"]) >= 2**32
            assert resp.read(1000) == bytes(1000)
        with pytest.raises((http.client.RemoteDisconnected, urllib.error.URLError, ConnectionError)):
            get(srv.url_template("wav").format(ytid="clipAAAAAAA"))


def test_unknown_fault_and_not_started(root):
    with pytest.raises(ValueError, match="unknown fault"):
        Fault("teapot")
    with pytest.raises(RuntimeError, match="not running"):
        _ = MediaServer(root).base_url


def test_transient_faults_clear_after_their_first_requests(root):
    faults = {"clipAAAAAAA.m4a": Fault("truncated", first=2), "clipAAAAAAA.wav": Fault("drop", first=1)}
    with MediaServer(root, faults=faults) as srv:
        url = srv.url_template("m4a").format(ytid="clipAAAAAAA")
        for _ in range(2):
            with pytest.raises(http.client.IncompleteRead):
                get(url)
        assert get(url)[2] == DATA
        wav = srv.url_template("wav").format(ytid="clipAAAAAAA")
        with pytest.raises((http.client.RemoteDisconnected, urllib.error.URLError, ConnectionError)):
            get(wav)
        assert get(wav)[2] == DATA
        assert srv.requests["clipAAAAAAA.m4a"] == 3


def test_alias_serves_one_file_under_any_name_and_latency_ranges(root):
    with MediaServer(root, alias="clipAAAAAAA", latency_s=(0.0, 0.02), faults={"gone0000000": "404"}) as srv:
        assert get(srv.url_template("m4a").format(ytid="otherYtid01"))[2] == DATA
        with pytest.raises(urllib.error.HTTPError) as e:
            get(srv.url_template("m4a").format(ytid="gone0000000"))
        assert e.value.code == 404
        with pytest.raises(urllib.error.HTTPError):  # no .flac of the alias either
            get(srv.url_template("flac").format(ytid="otherYtid01"))
        assert all(0.0 <= srv._latency() <= 0.02 for _ in range(20))


def test_redirect_loop(root):
    with MediaServer(root, faults={"clipAAAAAAA": "redirect-loop"}) as srv:
        url = srv.url_template("m4a").format(ytid="clipAAAAAAA")
        with pytest.raises(urllib.error.HTTPError, match="infinite loop|302"):
            get(url)
        assert srv.requests["clipAAAAAAA.m4a"] >= 2


def test_a_name_without_extension_serves_the_file_of_that_stem_in_its_format(tmp_path):
    (tmp_path / "clipBBBBBBB.webm").write_bytes(DATA)
    (tmp_path / "clipCCCCCCC.mp4").write_bytes(DATA[:100])
    with MediaServer(tmp_path, faults={"clipCCCCCCC": "410"}) as srv:
        url = srv.url_template("")
        assert url.endswith("/media/{ytid}")
        status, headers, body = get(url.format(ytid="clipBBBBBBB"))
        assert (status, headers["Content-Type"], body) == (200, "audio/webm", DATA)
        for ytid, code in (("clipCCCCCCC", 410), ("clipDDDDDDD", 404)):  # faults by stem still apply
            with pytest.raises(urllib.error.HTTPError) as e:
                get(url.format(ytid=ytid))
            assert e.value.code == code
