"""MusicCaps ingestion: fetch and validate the metadata -> ingest audio shards -> [train a codec] -> tokenize
-> audit -> codec evaluation per audit group.

Every task calls the same library function as the CLI (cadenza.stages, which calls
cadenza.pipelines.ingest.run.run_ingest, cadenza.pipelines.tokenize.run.run_tokenize and
cadenza.audit.run_audit); task outputs (paths, counts) travel as XComs. Beam stages run inside
the task on the runner named by the `runner` param (DirectRunner by default; Dataflow, Flink or Spark
through `beam_options`). Trigger with a config to override any param, e.g.
    airflow dags trigger musiccaps_ingest --conf '{"out_dir": "/data/cadenza", "limit": 100}'
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from cadenza.formats import defaults  # plain values: cheap to import when the DAG is parsed

FETCH_RETRIES = dict(retries=3, retry_delay=timedelta(seconds=30), retry_exponential_backoff=2.0,
                     max_retry_delay=timedelta(minutes=10))


@dag(
    dag_id="musiccaps_ingest",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["cadenza", "musiccaps", "beam"],
    doc_md=__doc__,
    params={
        "csv": Param(defaults.MUSICCAPS_CSV_URL, type="string",
                     description="MusicCaps CSV: a path or URL (downloaded once, cached)"),
        "ontology": Param(defaults.ONTOLOGY_URL, type="string", description="AudioSet ontology.json: a path or URL"),
        "out_dir": Param(defaults.DAG_OUT_DIR, type="string",
                         description="output root: metadata/, audio/, tokens/ and audit/ go under it"),
        "url_template": Param(defaults.YOUTUBE_URL_TEMPLATE, type="string",
                              description="media URL for a clip; {ytid} is replaced"),
        "runner": Param(defaults.BEAM_RUNNER, type="string", description="Beam runner"),
        "beam_options": Param([], type="array", items={"type": "string"},
                              description="extra Beam pipeline options, e.g. --direct_num_workers=2"),
        "shard_size": Param(defaults.SHARD_SIZE, type="integer", minimum=1, description="samples per shard"),
        "sample_rate": Param(defaults.SAMPLE_RATE, type="integer", minimum=8000,
                             description="ingest sample rate (Hz)"),
        "limit": Param(None, type=["null", "integer"], description="ingest only the first N valid rows"),
        "acoustic": Param(defaults.ACOUSTIC_CODEC, type="string", description="acoustic tokenizer"),
        "codec_weights": Param(None, type=["null", "string"],
                               description="a save_pretrained EnCodec dir; null: the HF cache (or train_codec)"),
        "train_codec": Param(False, type="boolean",
                             description="train an EnCodec on the ingested audio and tokenize with it (offline)"),
        "codec_preset": Param(defaults.DAG_CODEC_PRESET, type="string", enum=list(defaults.CODEC_PRESETS),
                              description="preset when training"),
        "codec_steps": Param(None, type=["null", "integer"], description="codec training steps (null: preset's)"),
        "random_init": Param(False, type="boolean",
                             description="random-init codec weights (tests only; tokens are not meaningful)"),
        "text": Param(defaults.TEXT_ENCODER, type="string", description="caption embedding model, or 'none'"),
        "clusters": Param(defaults.CLUSTERS, type="integer", minimum=2,
                          description="semantic k-means clusters when fitted here"),
    },
)
def musiccaps_ingest():
    @task(**FETCH_RETRIES)
    def fetch_metadata(params=None) -> dict:
        from cadenza import stages as o

        return o.fetch_metadata(params["csv"], o.stage_dirs(params["out_dir"])["metadata"])

    @task(**FETCH_RETRIES)
    def ingest(metadata: dict, params=None) -> dict:  # takes metadata so that it runs after validation
        from cadenza import stages as o

        # the CSV as given, not fetch_metadata's local copy: on a distributed executor the next task may run
        # on another worker, which resolves (and caches) the source itself
        return o.ingest(params["csv"], o.stage_dirs(params["out_dir"])["audio"],
                        url_template=params["url_template"], shard_size=params["shard_size"],
                        sample_rate=params["sample_rate"], limit=params["limit"], ontology=params["ontology"],
                        beam=o.beam_args(params["runner"], params["beam_options"]))

    @task
    def codec_train(audio: dict, params=None) -> dict:
        from cadenza import stages as o

        if not params["train_codec"]:  # a given or cached codec: nothing to train
            return {"dir": params["codec_weights"]}
        return o.codec_train(audio["dir"], o.stage_dirs(params["out_dir"])["codec"], preset=params["codec_preset"],
                             steps=params["codec_steps"])

    @task
    def tokenize(audio: dict, codec: dict, params=None) -> dict:
        from cadenza import stages as o

        return o.tokenize(audio["dir"], o.stage_dirs(params["out_dir"])["tokens"], acoustic=params["acoustic"],
                          random_init=params["random_init"], codec_weights=codec["dir"], text=params["text"],
                          clusters=params["clusters"], beam=o.beam_args(params["runner"], params["beam_options"]))

    @task
    def audit(metadata: dict, audio: dict, tokens: dict, params=None) -> dict:
        from cadenza import stages as o

        dirs = o.stage_dirs(params["out_dir"])
        return o.audit(params["csv"], dirs["audit"], ontology=params["ontology"], audio_dir=audio["dir"],
                       weights_out=f"{dirs['audit']}/weights.json")

    @task
    def codec_eval(codec: dict, audio: dict, audit_out: dict, params=None) -> dict:
        from cadenza import stages as o

        if not codec["dir"]:  # the HF cache's codec: evaluate it with `cadenza codec eval` on a local copy
            return {}
        return o.codec_eval(codec["dir"], audio["dir"], o.stage_dirs(params["out_dir"])["codec_eval"],
                            audit_dir=audit_out["dir"])

    metadata = fetch_metadata()
    audio = ingest(metadata)
    codec = codec_train(audio)
    tokens = tokenize(audio, codec)
    audit_out = audit(metadata, audio, tokens)
    codec_eval(codec, audio, audit_out)


musiccaps_ingest()
