"""MusicCaps ingestion: fetch and validate the metadata -> ingest audio shards -> tokenize -> audit.

Every task calls the same library function as the CLI (cadenza.orchestration, which calls
cadenza.pipelines.ingest.run_ingest, cadenza.pipelines.tokenize.run_tokenize and
cadenza.musiccaps.audit.run_audit); task outputs (paths, counts) travel as XComs. Beam stages run inside
the task on the runner named by the `runner` param (DirectRunner by default; Dataflow, Flink or Spark
through `beam_options`). Trigger with a config to override any param, e.g.
    airflow dags trigger musiccaps_ingest --conf '{"out_dir": "/data/cadenza", "limit": 100}'
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

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
        "csv": Param("https://huggingface.co/datasets/google/MusicCaps/resolve/main/musiccaps-public.csv",
                     type="string", description="MusicCaps CSV: a path or URL (downloaded once, cached)"),
        "ontology": Param("https://raw.githubusercontent.com/audioset/ontology/master/ontology.json",
                          type="string", description="AudioSet ontology.json: a path or URL"),
        "out_dir": Param("~/cadenza-data", type="string",
                         description="output root: metadata/, audio/, tokens/ and audit/ go under it"),
        "url_template": Param("https://www.youtube.com/watch?v={ytid}", type="string",
                              description="media URL for a clip; {ytid} is replaced"),
        "runner": Param("DirectRunner", type="string", description="Beam runner"),
        "beam_options": Param([], type="array", items={"type": "string"},
                              description="extra Beam pipeline options, e.g. --direct_num_workers=2"),
        "shard_size": Param(256, type="integer", minimum=1, description="samples per shard"),
        "sample_rate": Param(32000, type="integer", minimum=8000, description="ingest sample rate (Hz)"),
        "limit": Param(None, type=["null", "integer"], description="ingest only the first N valid rows"),
        "acoustic": Param("encodec_24khz", type="string", description="acoustic tokenizer"),
        "random_init": Param(False, type="boolean",
                             description="random-init codec weights (offline demo; tokens are not meaningful)"),
        "text": Param("minilm", type="string", description="caption embedding model, or 'none'"),
        "clusters": Param(1024, type="integer", minimum=2, description="semantic k-means clusters when fitted here"),
    },
)
def musiccaps_ingest():
    @task(**FETCH_RETRIES)
    def fetch_metadata(params=None) -> dict:
        from cadenza import orchestration as o

        return o.fetch_metadata(params["csv"], o.stage_dirs(params["out_dir"])["metadata"])

    @task(**FETCH_RETRIES)
    def ingest(metadata: dict, params=None) -> dict:  # takes metadata so that it runs after validation
        from cadenza import orchestration as o

        # the CSV as given, not fetch_metadata's local copy: on a distributed executor the next task may run
        # on another worker, which resolves (and caches) the source itself
        return o.ingest(params["csv"], o.stage_dirs(params["out_dir"])["audio"],
                        url_template=params["url_template"], shard_size=params["shard_size"],
                        sample_rate=params["sample_rate"], limit=params["limit"], ontology=params["ontology"],
                        beam=o.beam_args(params["runner"], params["beam_options"]))

    @task
    def tokenize(audio: dict, params=None) -> dict:
        from cadenza import orchestration as o

        return o.tokenize(audio["dir"], o.stage_dirs(params["out_dir"])["tokens"], acoustic=params["acoustic"],
                          random_init=params["random_init"], text=params["text"], clusters=params["clusters"],
                          beam=o.beam_args(params["runner"], params["beam_options"]))

    @task
    def audit(metadata: dict, audio: dict, tokens: dict, params=None) -> dict:
        from cadenza import orchestration as o

        dirs = o.stage_dirs(params["out_dir"])
        return o.audit(params["csv"], dirs["audit"], ontology=params["ontology"], audio_dir=audio["dir"],
                       weights_out=f"{dirs['audit']}/weights.json")

    metadata = fetch_metadata()
    audio = ingest(metadata)
    tokens = tokenize(audio)
    audit(metadata, audio, tokens)


musiccaps_ingest()
