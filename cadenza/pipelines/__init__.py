"""The Beam pipelines: `beam` (runner choice and progress), `ingest` (rows -> audio shards) and `tokenize`
(audio shards -> token shards). Nothing outside this package imports Beam.
"""
