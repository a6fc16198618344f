"""Ingest: validated rows -> yt-dlp fetch -> clip, resample, quality stats -> audio shards.

`run` holds `IngestConfig` and `run_ingest`; `graph` the Beam transforms; `clipjob` one clip's work;
`fetch`, `fetch_errors` and `session_guard` talking to the source; `shard_plan` which rows go where.
"""
