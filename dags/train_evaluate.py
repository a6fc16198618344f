"""Split token shards into train / held-out -> train the two-stage model -> sample -> evaluate on the
held-out clips, every metric broken down by the audit's cultural groups -> the chain per culture on one
page (cadenza.audit.chain_report).

Each task calls the library (cadenza.stages -> cadenza.training.trainer.train, .sampler.sample,
.evaluate.evaluate); outputs travel as XComs. Expects the layout musiccaps_ingest writes under `out_dir`
(tokens/ and audit/); give `tokens_dir` to train from prebuilt shards elsewhere.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from cadenza.formats import defaults  # plain values: cheap to import when the DAG is parsed


@dag(
    dag_id="train_evaluate",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["cadenza", "training"],
    doc_md=__doc__,
    params={
        "out_dir": Param(defaults.DAG_OUT_DIR, type="string",
                         description="output root: run/, samples/ and eval/ go under it"),
        "tokens_dir": Param(None, type=["null", "string"], description="token shards (default: OUT_DIR/tokens)"),
        "audit_dir": Param(None, type=["null", "string"], description="audit output (default: OUT_DIR/audit)"),
        "preset": Param(defaults.MODEL_PRESET, type="string", enum=list(defaults.MODEL_PRESETS),
                        description="model size preset"),
        "max_steps": Param(defaults.CHAIN_TRAIN_STEPS, type="integer", minimum=1, description="training steps"),
        "use_audit_weights": Param(True, type="boolean",
                                   description="reweight sampling with the audit's weights.json when present"),
        "num_samples": Param(defaults.CHAIN_EVAL_SAMPLES, type="integer", minimum=1,
                             description="held-out captions generated in evaluation"),
        "prompts": Param(["a calm piano melody", "an energetic electronic dance track with a heavy kick"],
                         type="array", items={"type": "string"}, description="captions to sample"),
        "seconds": Param(defaults.SAMPLE_SECONDS, type="number", minimum=0.5, description="length of each sample"),
        "heldout_shards": Param(1, type="integer", minimum=1, description="token shards held out for evaluation"),
        "holdout_by": Param("shard", type="string", enum=["shard", "annotator"],
                            description="hold out the last shards, or every clip of some annotators (from the audit)"),
        "random_init": Param(False, type="boolean",
                             description="the tokens were made with a random-init codec (demo): decode with it"),
        "seed": Param(0, type="integer"),
    },
)
def train_evaluate():
    @task
    def split_tokens(params=None) -> dict:
        from cadenza import stages as o

        dirs = o.stage_dirs(params["out_dir"])
        return o.split_tokens(params["tokens_dir"] or dirs["tokens"], dirs["split"],
                              heldout_shards=params["heldout_shards"], holdout_by=params["holdout_by"],
                              audit_dir=params["audit_dir"] or dirs["audit"])

    @task
    def train(split: dict, params=None) -> dict:
        from pathlib import Path

        from cadenza import stages as o

        dirs = o.stage_dirs(params["out_dir"])
        weights = Path(params["audit_dir"] or dirs["audit"]).expanduser() / "weights.json"
        return o.train(split["train"], dirs["run"], preset=params["preset"], steps=params["max_steps"],
                       seed=params["seed"],
                       weights=str(weights) if params["use_audit_weights"] and weights.is_file() else None)

    @task
    def sample(run: dict, params=None) -> dict:
        from cadenza import stages as o

        return o.sample(run["dir"], o.stage_dirs(params["out_dir"])["samples"], prompts=params["prompts"],
                        seconds=params["seconds"], seed=params["seed"], codec_random_init=params["random_init"])

    @task
    def evaluate(split: dict, run: dict, samples: dict, params=None) -> dict:
        from pathlib import Path

        from cadenza import stages as o
        from cadenza.formats.assignments import ASSIGNMENTS_FILE

        dirs = o.stage_dirs(params["out_dir"])
        audit_dir = Path(params["audit_dir"] or dirs["audit"]).expanduser()
        if not (audit_dir / ASSIGNMENTS_FILE).is_file():
            raise o.StageError("evaluate", f"no audit at {audit_dir}: run musiccaps_ingest (or `cadenza audit`) "
                                           "first, or set audit_dir")
        return o.evaluate(run["dir"], split["heldout"], dirs["eval"], audit_dir=str(audit_dir),
                          num_samples=params["num_samples"], codec_random_init=params["random_init"])

    @task
    def report(evaluation: dict, params=None) -> dict:
        from pathlib import Path

        from cadenza import stages as o

        dirs = o.stage_dirs(params["out_dir"])
        audit_dir = Path(params["audit_dir"] or dirs["audit"]).expanduser()
        # musiccaps_ingest's codec evaluation, when it ran (a trained or given codec)
        codec_eval = dirs["codec_eval"] if Path(dirs["codec_eval"], "metrics.json").is_file() else None
        return o.report(str(audit_dir), dirs["report"], eval_dir=evaluation["dir"], codec_eval_dir=codec_eval)

    split = split_tokens()
    run = train(split)
    report(evaluate(split, run, sample(run)))


train_evaluate()
