"""`cadenza doctor`: what yt-dlp, configured as the ingest configures it, sees on this machine."""

from __future__ import annotations

import json
import sysconfig
import time

import pytest
from typer.testing import CliRunner

from cadenza.cli import app
from cadenza.pipelines.ingest import fetch

YEAR = 365 * 24 * 3600


def test_doctor_json_shows_deno_available_as_ytdlp_reports_it():
    deno = pytest.importorskip("deno")  # a dependency of cadenza: its absence is what the next test covers
    res = CliRunner().invoke(app, ["doctor", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    runtimes = {r["name"]: r for r in report["js_runtimes"]}
    assert runtimes["deno"]["available"] and runtimes["deno"]["path"] == deno.find_deno_bin()
    assert report["js_runtimes_line"].startswith("deno-" + runtimes["deno"]["version"])  # yt-dlp's own words
    assert {p["name"]: p["available"] for p in report["challenge_providers"]}["deno"] is True
    assert report["yt_dlp_ejs"] and report["ffmpeg"]["path"] and report["degraded"] is False
    assert all(p["severity"] == "warning" for p in report["problems"])


def without_deno(monkeypatch, empty_dir) -> None:
    """As if the deno wheel were not installed: its binary's folder (the environment's scripts folder,
    where both the wheel's locator and yt-dlp look) is an empty one, and PATH has no deno either."""
    real = sysconfig.get_path
    monkeypatch.setattr(sysconfig, "get_path", lambda name, *a, **kw: str(empty_dir) if name == "scripts"
                        else real(name, *a, **kw))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert fetch.deno_path() is None


def test_doctor_fails_with_one_clear_line_when_the_runtime_is_gone(monkeypatch, tmp_path):
    without_deno(monkeypatch, tmp_path)
    res = CliRunner().invoke(app, ["doctor"])
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.stdout.splitlines() if ln.startswith("error:")]
    assert any("no JS runtime" in ln and "pip install deno" in ln for ln in errors), res.stdout
    assert "JS challenge providers: bun (unavailable), deno (unavailable)" in res.stdout
    assert res.stdout.rstrip().endswith("YouTube ingest would be degraded")


def write_cookies(path, lines: list[tuple[str, str, int]]) -> str:
    rows = ["# Netscape HTTP Cookie File"] + [f"{d}\tTRUE\t/\tTRUE\t{exp}\t{name}\tv" for d, name, exp in lines]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_doctor_reads_the_cookies_file_like_ytdlp(tmp_path):
    now = int(time.time())
    cookies = [(".youtube.com", "SAPISID", now + YEAR), (".google.com", "NID", now + 3),
               (".youtube.com", "PREF", now + 2 * YEAR), (".youtube.com", "OLD", now - 10)]
    good = write_cookies(tmp_path / "c.txt", cookies)
    report = json.loads(CliRunner().invoke(app, ["doctor", "--json", "--cookies", good]).stdout)
    c = report["cookies"]
    assert (c["youtube_cookies"], c["expired"], c["signed_in"], c["error"]) == (3, 1, True, None)
    assert c["earliest_expiry"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 10))
    assert not any("cookies" in p["what"] for p in report["problems"])

    other = write_cookies(tmp_path / "g.txt", [(".google.com", "NID", now + YEAR)])
    res = CliRunner().invoke(app, ["doctor", "--cookies", other])
    assert res.exit_code == 1 and "holds no youtube.com cookies" in res.stdout
    (tmp_path / "j.txt").write_text('[{"domain": ".youtube.com", "name": "SID", "value": "x"}]\n')
    res = CliRunner().invoke(app, ["doctor", "--cookies", str(tmp_path / "j.txt")])
    assert res.exit_code == 1 and "Netscape" in res.stdout
    res = CliRunner().invoke(app, ["doctor", "--cookies", str(tmp_path / "missing.txt")])
    assert res.exit_code == 2 and "missing.txt" in res.output


def test_ingest_warns_at_startup_for_youtube_only(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    without_deno(monkeypatch, tmp_path / "empty")
    csv = tmp_path / "mc.csv"
    csv.write_text("ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,is_balanced_subset,"
                   "is_audioset_eval\nnot-a-ytid,30,40,/m/04rlf,\"['x']\",c,1,False,False\n")
    # the one row fails validation: nothing is fetched, so nothing leaves this machine; the start-up check
    # still runs
    base = ["ingest", "--csv", str(csv), "--ontology", "none", "--no-progress",
            "--direct_running_mode", "in_memory"]
    res = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "yt")])
    assert res.exit_code == 0, res.output
    assert "error: yt-dlp finds no JS runtime" in res.stderr and "(cadenza doctor)" in res.stderr
    res = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "mirror"), "--source-url-template",
                                   "http://127.0.0.1:9/media/{ytid}.m4a"])
    assert res.exit_code == 0, res.output
    assert "cadenza doctor" not in res.stderr
