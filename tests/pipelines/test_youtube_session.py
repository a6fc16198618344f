"""Blaming the right side, and stopping when YouTube blocks the session: classification of yt-dlp's
real error texts, the breaker over loopback through the real yt-dlp and Beam, and the request budget
under concurrency."""

from __future__ import annotations

import json
import threading
import time

import pytest
from ingest_testkit import media_dir, read_all, read_pending, write_csv  # noqa: F401 (fixture)
from typer.testing import CliRunner
from yt_dlp.utils import DownloadError, ExtractorError

from cadenza.audit.survival import LOST, PENDING, SURVIVED, survival_from_ingest
from cadenza.cli import app
from cadenza.formats.failures import CLIP, SESSION, side_of
from cadenza.musiccaps import load_musiccaps
from cadenza.pipelines.ingest.clipjob import ClipJobConfig, process_clip
from cadenza.pipelines.ingest.fetch import Fetcher, FetchOptions
from cadenza.pipelines.ingest.fetch_errors import classify
from cadenza.pipelines.ingest.session_guard import SessionGuard, SessionLimits
from cadenza.testing.mediaserver import MediaServer

ID = "[youtube] dQw4w9WgXcQ: "
COOKIE_HINT = ("Use --cookies-from-browser or --cookies for the authentication. See  https://github.com/yt-dlp/"
               "yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how to manually pass cookies. Also see  "
               "https://github.com/yt-dlp/yt-dlp/wiki/Extractors#exporting-youtube-cookies  for tips on "
               "effectively exporting YouTube cookies")
NO_FORMAT = ID + "Requested format is not available. Use --list-formats for a list of available formats"
N_FAILED = ("WARNING: [youtube] dQw4w9WgXcQ: n challenge solving failed: Some formats may be missing. Ensure you "
            "have a supported JavaScript runtime and challenge solver script distribution installed.")
NO_RUNTIME = ("WARNING: [youtube] No supported JavaScript runtime could be found. Only deno is enabled by default; "
              "to use another runtime add  --js-runtimes RUNTIME[:PATH]  to your command/config.")

# yt-dlp's messages as users quote them in its issue tracker: (error, earlier log lines, category)
CASES = [
    (ID + "Sign in to confirm you\u2019re not a bot. " + COOKIE_HINT, [], "bot_check"),
    (ID + "Sign in to confirm you're not a bot. This helps protect our community. Learn more", [], "bot_check"),
    (ID + "Video unavailable. This content isn't available, try again later. The current session has been "
     "rate-limited by YouTube for up to an hour. It is recommended to use `-t sleep` to add a delay between "
     "video requests to avoid exceeding the rate limit.", [], "rate_limited"),
    ("unable to download video data: HTTP Error 429: Too Many Requests", [], "rate_limited"),
    (NO_FORMAT, [N_FAILED], "js_challenge_failed"),
    (NO_FORMAT, [NO_RUNTIME], "js_runtime_missing"),
    (ID + "The following content is not available on this app.. Watch on the latest version of YouTube.", [],
     "client_rejected"),
    ("unable to download video data: HTTP Error 403: Forbidden", [], "forbidden"),
    (ID + "Private video. Sign in if you've been granted access to this video. " + COOKIE_HINT, [], "private"),
    (ID + "Video unavailable. This video has been removed by the uploader", [], "removed"),
    (ID + "Video unavailable. This video is no longer available because the YouTube account associated with "
     "this video has been terminated.", [], "removed"),
    (ID + "Video unavailable. This video contains content from UMG, who has blocked it on copyright grounds", [],
     "removed"),
    (ID + "Sign in to confirm your age. This video may be inappropriate for some users. " + COOKIE_HINT, [],
     "age_restricted"),
    (ID + "Video unavailable. The uploader has not made this video available in your country", [], "geo_blocked"),
    (ID + "Join this channel to get access to members-only content like this video, and other exclusive perks.",
     [], "members_only"),
    (ID + "Video unavailable", [], "unavailable"),
    (NO_FORMAT, [], "not_audio"),
]
CLIP_CATEGORIES = {"private", "removed", "age_restricted", "geo_blocked", "members_only", "unavailable", "not_audio"}


@pytest.mark.parametrize(("text", "log", "category"), CASES, ids=[f"{c}-{i}" for i, (_, _, c) in enumerate(CASES)])
def test_real_ytdlp_errors_blame_the_right_side(text, log, category):
    # as YoutubeDL raises them: a DownloadError around the extractor's ExtractorError
    cause = ExtractorError(text.removeprefix(ID), expected=True, video_id="dQw4w9WgXcQ", ie="youtube")
    err = classify(DownloadError("ERROR: " + text, (ExtractorError, cause, None)), log)
    assert err.category == category, err
    assert side_of(category) == (CLIP if category in CLIP_CATEGORIES else SESSION)


def test_a_missing_runtime_is_named_even_after_ytdlp_stopped_warning():
    # yt-dlp warns "No supported JavaScript runtime" once per instance; later clips only say "no format"
    assert classify(DownloadError("ERROR: " + NO_FORMAT), [], js_runtime_found=False).category == "js_runtime_missing"
    assert classify(DownloadError("ERROR: " + NO_FORMAT), [], js_runtime_found=True).category == "not_audio"


@pytest.mark.parametrize(("fault", "category"), [("bot-check", "bot_check"), ("rate-limit", "rate_limited")])
def test_loopback_block_pages_reach_their_category_through_ytdlp(media_dir, fault, category):  # noqa: F811
    with MediaServer(media_dir, faults={"*": fault}) as srv, Fetcher(FetchOptions(socket_timeout_s=5)) as fetcher:
        job = ClipJobConfig(srv.url_template("m4a"), sample_rate=16000, max_attempts=1)
        clip = load_clip("goodAAAAAAA")
        res = process_clip(clip, job, fetcher=fetcher)
    assert res.sample is None and res.failure is None and res.pending == category, res


def load_clip(ytid: str):
    from cadenza.musiccaps.schema import ClipRecord

    return ClipRecord(ytid, 1.0, 6.0, ("/m/04rlf",), ("calm",), "a caption", 1, False, False, row=1)


def ingest_args(csv, out, srv) -> list[str]:
    return ["ingest", "--csv", str(csv), "--out", str(out), "--source-url-template", srv.url_template("m4a"),
            "--shard-size", "2", "--ontology", "none", "--no-progress", "--json", "--max-attempts", "2",
            "--max-blocked", "2", "--block-pause", "0.02", "--max-concurrent-fetches", "4",
            "--direct_running_mode", "in_memory"]


@pytest.mark.parametrize("fault", ["bot-check", "rate-limit"])
def test_a_blocked_session_trips_the_breaker_loses_nothing_and_a_rerun_completes(media_dir, tmp_path, fault):  # noqa: F811
    rows = [(ytid, 0, 10) for ytid in ("goodAAAAAAA", "goodBBBBBBB")] + [("goodAAAAAAA", 10, 20),
                                                                          ("goodBBBBBBB", 2, 12)]
    csv = write_csv(tmp_path / "mc.csv", rows)
    out = tmp_path / "out"
    runner = CliRunner()
    with MediaServer(media_dir, faults={"*": fault}) as srv:
        blocked = runner.invoke(app, ingest_args(csv, out, srv))
        assert blocked.exit_code == 4, blocked.output
        # one line says it all (library logging, if any, may share stderr)
        lines = [ln for ln in blocked.stderr.splitlines() if "YouTube is blocking this session" in ln]
        assert len(lines) == 1 and lines[0].startswith("error: "), blocked.stderr
        assert "4 rows are pending" in lines[0] and "--cookies" in lines[0] and "--pot-provider-url" in lines[0]
        assert "--max-videos-per-hour" in lines[0] and "run the same command again" in lines[0]
        samples, failures = read_all(out)
        assert samples == {} and failures == []  # nothing is the clips' fault: no failure record
        assert len(read_pending(out)) == 4
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["rows_pending"] == 4 and manifest["clips_failed"] == 0 and manifest["session"]["blocked"]
        clips = load_musiccaps(str(csv)).clips
        survival = survival_from_ingest(str(out), clips)
        assert survival.counts()[LOST] == 0 and survival.counts()[PENDING] == 4

        srv.set_fault("*", None)  # the session is let through again: the same command resumes
        srv.reset_counts()
        rerun = runner.invoke(app, ingest_args(csv, out, srv))
    assert rerun.exit_code == 0, rerun.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["clips_written"] == 4 and manifest["rows_pending"] == 0 and not manifest["session"]["blocked"]
    assert set(survival_from_ingest(str(out), clips).status.values()) == {SURVIVED}


def test_the_breaker_counts_one_block_per_pause_and_resets_on_success():
    from cadenza.pipelines.ingest.fetch_errors import FetchError

    guard = SessionGuard(SessionLimits(max_videos_per_hour=0, max_blocked=2, block_pause_s=0.01))
    block = FetchError("bot_check", "Sign in to confirm you're not a bot", transient=True)
    stale = guard.before_fetch()
    same = guard.before_fetch()
    guard.after_fetch(stale, block)
    guard.after_fetch(same, block)  # the same block seen by a second thread: not another one in a row
    assert guard.blocked_in_row == 1 and not guard.tripped
    guard.after_fetch(guard.before_fetch(), None)  # a success after the pause: YouTube lets us through
    assert guard.blocked_in_row == 0
    guard.after_fetch(guard.before_fetch(), block)
    guard.after_fetch(guard.before_fetch(), FetchError("not_found", "404"))  # clip-side: neither block nor success
    guard.after_fetch(guard.before_fetch(), block)
    assert guard.tripped
    with pytest.raises(FetchError) as exc:
        guard.before_fetch()
    assert exc.value.category == "session_blocked" and side_of("session_blocked") == SESSION


def test_the_budget_holds_under_concurrency(media_dir):  # noqa: F811
    """8 threads through one worker's guard: clip fetches start at most max_videos_per_hour per hour."""
    interval = 0.5
    guard = SessionGuard(SessionLimits(max_videos_per_hour=3600 / interval))
    queue = [load_clip(f"budget{i:05d}") for i in range(10)]  # all served by one file (alias)
    results: list = []
    lock = threading.Lock()
    with MediaServer(media_dir, alias="goodAAAAAAA") as srv, Fetcher(FetchOptions(socket_timeout_s=5)) as fetcher:
        job = ClipJobConfig(srv.url_template("wav"), sample_rate=16000, max_attempts=1)

        def work() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    c = queue.pop()
                results.append(process_clip(c, job, fetcher=fetcher, guard=guard))

        threads = [threading.Thread(target=work) for _ in range(8)]
        began = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        log = list(srv.request_log)
    assert len(results) == 10 and all(r.sample is not None for r in results), results
    starts: dict[str, float] = {}  # a clip's first request opens its fetch: those are what the budget spaces
    for t, name in log:
        starts.setdefault(name, t)
    firsts = sorted(starts.values())
    assert len(firsts) == 10
    # by any time t, at most 1 + (t - began) / interval fetches have started: the k-th start comes no
    # earlier than k intervals after the threads began (a busy machine only delays requests, never
    # advances them; 8 unpaced threads would make their first 8 requests at once)
    for k, t in enumerate(firsts):
        assert t - began >= k * interval - 1e-3, (k, [round(x - began, 3) for x in firsts])


def test_failed_js_challenges_stop_the_run_with_their_own_advice():
    from cadenza.pipelines.ingest.fetch_errors import FetchError
    from cadenza.pipelines.ingest.run import SessionBlockedError

    # a long pause would hang this test: JS failures must trip the breaker without pausing
    guard = SessionGuard(SessionLimits(max_videos_per_hour=0, max_blocked=2, block_pause_s=3600))
    for _ in range(2):
        guard.after_fetch(guard.before_fetch(), FetchError("js_challenge_failed", "n challenge solving failed"))
    assert guard.tripped
    manifest = {"rows_pending": 7, "pending_by_category": {"js_challenge_failed": 2, "session_blocked": 5}}
    line = str(SessionBlockedError(manifest))
    assert "JS challenges" in line and "cadenza doctor" in line and "7 rows are pending" in line


def test_ytdlp_options_carry_the_runtime_the_pot_provider_and_browser_cookies(tmp_path):
    from cadenza.pipelines.ingest.fetch import _Log, browser_cookies_spec, deno_path, ydl_options

    opts = FetchOptions(pot_provider_url="http://127.0.0.1:4416", cookies_from_browser="firefox:default-release")
    o = ydl_options(tmp_path, opts, _Log())
    assert o["js_runtimes"] == {"deno": {"path": deno_path()}} and deno_path()
    assert o["extractor_args"] == {"youtubepot-bgutilhttp": {"base_url": ["http://127.0.0.1:4416"]}}
    assert o["cookiesfrombrowser"] == ("firefox", "default-release", None, None)
    assert browser_cookies_spec("chrome+gnomekeyring") == ("chrome", None, "GNOMEKEYRING", None)
    with pytest.raises(ValueError, match="--cookies-from-browser"):
        browser_cookies_spec("netscape-navigator")


@pytest.mark.parametrize(("kw", "msg"), [
    ({"max_blocked": 0}, "--max-blocked"), ({"max_videos_per_hour": -1}, "--max-videos-per-hour"),
    ({"block_pause_s": -1}, "--block-pause"), ({"vantage": "not a label"}, "--vantage"),
    ({"pot_provider_url": "localhost:4416"}, "--pot-provider-url"), ({"cookies_from_browser": "mosaic"}, "browser"),
])
def test_session_options_are_checked_before_any_work(tmp_path, kw, msg):
    from cadenza.pipelines.ingest.run import IngestConfig

    with pytest.raises(ValueError, match=msg):
        IngestConfig(csv=str(tmp_path / "x.csv"), out=str(tmp_path / "o"), **kw).validate()


def test_the_youtube_budget_applies_to_youtube_only():
    from cadenza.pipelines.ingest.run import IngestConfig

    yt = IngestConfig(csv="x", out="o").session_limits()
    mirror = IngestConfig(csv="x", out="o", source_url_template="http://127.0.0.1:1/{ytid}.m4a").session_limits()
    assert (yt.max_videos_per_hour, yt.interval_s, yt.block_pause_s) == (300, 12.0, 60.0)
    assert (mirror.max_videos_per_hour, mirror.interval_s) == (0, 0.0)
    both = IngestConfig(csv="x", out="o", max_videos_per_hour=1000, sleep_requests=5).session_limits()
    assert both.interval_s == 5.0  # the slower of the budget (3.6 s) and --sleep-requests


def test_a_rerun_fetches_only_the_pending_rows_and_keeps_the_rest(media_dir, tmp_path):  # noqa: F811
    """One shard holding a sample, a clip-side failure and a pending row: the rerun redoes only the latter."""
    from cadenza.pipelines.ingest.run import IngestConfig, run_ingest

    csv = write_csv(tmp_path / "mc.csv", [("goodAAAAAAA", 0, 10), ("f404xxxxxxx", 0, 10), ("f500xxxxxxx", 0, 10)])
    beam = ["--direct_running_mode=in_memory"]
    with MediaServer(media_dir, faults={"f404xxxxxxx": "404", "f500xxxxxxx": "500"}) as srv:
        cfg = IngestConfig(csv=str(csv), out=str(tmp_path / "out"), source_url_template=srv.url_template("m4a"),
                           shard_size=3, max_attempts=2, backoff_base_s=0.01, socket_timeout_s=5, progress=False)
        first = run_ingest(cfg, beam)
        assert (first["clips_written"], first["clips_failed"], first["rows_pending"]) == (1, 1, 1)
        assert first["pending_by_category"] == {"server_error": 1}
        srv.set_fault("f500xxxxxxx", None)
        srv.reset_counts()
        second = run_ingest(cfg, beam)
        assert set(srv.requests) == {"f500xxxxxxx.m4a"}  # neither the landed clip nor the 404 is asked again
    assert (second["clips_written"], second["clips_failed"], second["rows_pending"]) == (2, 1, 0)
    samples, failures = read_all(tmp_path / "out")
    assert {s["ytid"] for s in samples.values()} == {"goodAAAAAAA", "f500xxxxxxx"}
    assert [(f["ytid"], f["category"]) for f in failures] == [("f404xxxxxxx", "not_found")]
