"""`run_demo` end to end: the real chain on the synthesised data, twice (the second run reuses)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadenza.demo.run import missing_stages, run_demo


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the whole chain twice; about 5 min on an idle 2-core machine
def test_run_demo_end_to_end(tmp_path):
    assert missing_stages() == {}
    first = run_demo(tmp_path, n_clips=7, max_steps=3, num_samples=2, sample_seconds=2.0, codec_steps=20)
    assert first["fetch_metadata"]["rejected"] == 2
    assert first["ingest"]["clips_written"] == 7 and first["ingest"]["failures_by_category"]
    # the demo's codec is trained on its own audio, not random: tokens, samples and evaluation say so
    assert first["codec_train"]["random_weights"] is False and first["tokenize"]["random_weights"] is False
    assert first["codec_train"]["steps"] == 20  # codec_steps, not the preset's 800 (it once took `limit`'s place)
    assert first["codec_train"]["heldout_log_mel_l1"] < first["codec_train"]["random_init_log_mel_l1"]
    assert first["codec_eval"]["clips"] == 7
    for path in (first["ingest"]["manifest"], first["tokenize"]["manifest"], first["audit"]["report_html"],
                 first["evaluate"]["report_html"], first["sample"]["index"], first["report"]["report_html"]):
        assert Path(path).is_file(), path
    # the chain page: dataset share, survival (the demo plants download failures) and the model's NLL ran
    links = first["report"]["links"]
    assert links["share"] == links["survival"] == links["nll_acoustic"] == "ok", links
    assert links["codec_log_mel_l1"] == "ok", links
    second = run_demo(tmp_path, n_clips=7, max_steps=3, num_samples=2, sample_seconds=2.0, codec_steps=20)
    assert second["dataset"]["reused"] is True
    assert second["ingest"]["clips_written"] == first["ingest"]["clips_written"]
    assert second["train"]["steps"] == first["train"]["steps"] == 3  # resumed at the end: nothing retrained
    assert second["codec_train"] == first["codec_train"]  # the finished codec is reused


def test_check_served_over_loopback(tmp_path):
    import functools
    import http.server
    import threading

    from cadenza.demo.dataset import build_demo_dataset
    from cadenza.demo.run import check_served
    from cadenza.stages import StageError

    ds = build_demo_dataset(tmp_path / "data", n_clips=1, audio_format="wav", sample_rate=8000, progress=False)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ds.root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        template = ds.url_template(f"http://127.0.0.1:{server.server_address[1]}")
        check_served(template, ds.clips[0].ytid)
        with pytest.raises(StageError, match="stage 'serve' failed: .*404"):
            check_served(template, ds.planted[2].ytid)  # the planted missing-media row
        with pytest.raises(StageError, match="loopback"):
            check_served("https://www.youtube.com/watch?v={ytid}", "abc")
    finally:
        server.shutdown()
        server.server_close()
