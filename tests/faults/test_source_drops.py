"""The source hanging up mid-transfer: a flaky source is retried until the clip lands (the same audio as
from a steady source); a source that always hangs up leaves the row pending (the network's fault, not
the clip's) with its category, after every attempt.
Real Beam, yt-dlp and ffmpeg against the loopback server; with and without HTTP Range support."""

from __future__ import annotations

import pytest
from faultkit import REPO  # noqa: F401 (puts tests/pipelines on sys.path)
from ingest_testkit import (  # noqa: F401 (media_dir is a fixture)
    media_dir,
    read_all,
    read_pending,
    read_shard,
    write_csv,
)

from cadenza.pipelines.ingest.run import IngestConfig, run_ingest
from cadenza.testing.mediaserver import Fault, MediaServer

pytestmark = pytest.mark.slow

# every ytid below serves a copy of goodCCCCCCC's media (see ingest_testkit)
FLAKY = {"ftruncatedx": Fault("truncated", first=2), "fdropxxxxxx": Fault("drop", first=2)}
BROKEN = {"f404xxxxxxx": ("truncated", "truncated"), "f403xxxxxxx": ("drop", "connection")}


@pytest.mark.parametrize("range_support", [True, False], ids=["ranges", "no-ranges"])
def test_dropped_connections_are_retried_categorized_and_nothing_is_lost(media_dir, tmp_path, range_support):  # noqa: F811
    ytids = ["goodCCCCCCC", *FLAKY, *BROKEN]
    csv = write_csv(tmp_path / "mc.csv", [(y, 0, 10) for y in ytids])
    faults = {**FLAKY, **{y: kind for y, (kind, _) in BROKEN.items()}}
    with MediaServer(media_dir, faults=faults, range_support=range_support) as srv:
        cfg = IngestConfig(csv=str(csv), out=str(tmp_path / "out"), source_url_template=srv.url_template("m4a"),
                           shard_size=2, max_attempts=4, backoff_base_s=0.01, socket_timeout_s=5, progress=False)
        manifest = run_ingest(cfg, ["--direct_running_mode=in_memory"])
        requests = dict(srv.requests)

    samples, failures = read_all(tmp_path / "out")
    pending = read_pending(tmp_path / "out")
    assert failures == [] and sorted(s["ytid"] for s in samples.values()) == sorted(["goodCCCCCCC", *FLAKY])
    assert {key.split("_", 1)[0]: why for key, why in pending.items()} == {y: c for y, (_, c) in BROKEN.items()}
    assert manifest["clips_written"] == 3 and manifest["pending_by_category"] == {"connection": 1, "truncated": 1}
    for ytid in BROKEN:
        assert requests[f"{ytid}.m4a"] >= 4, (ytid, requests)  # every attempt was made
    for ytid in FLAKY:
        assert requests[f"{ytid}.m4a"] > 2, (ytid, requests)  # the hang-ups were seen, and retried past

    flac = {k.split("_", 1)[0]: m["flac"] for t in (tmp_path / "out" / "shards").glob("*.tar")
            for k, m in read_shard(t).items()}
    for ytid in FLAKY:  # what lands after the retries is the whole clip, not a cut-short one
        assert flac[ytid] == flac["goodCCCCCCC"], ytid
