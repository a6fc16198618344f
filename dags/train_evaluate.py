"""Train the two-stage model on token shards -> sample from it -> evaluate -> break the evaluation down by
the audit's groups.

Each task calls the library (cadenza.orchestration -> cadenza.training.trainer.train, .sampler.sample,
.evaluate.evaluate); outputs travel as XComs. Expects the layout musiccaps_ingest writes under `out_dir`
(tokens/ and audit/); give `tokens_dir` to train from prebuilt shards elsewhere.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task


@dag(
    dag_id="train_evaluate",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["cadenza", "training"],
    doc_md=__doc__,
    params={
        "out_dir": Param("~/cadenza-data", type="string",
                         description="output root: run/, samples/ and eval/ go under it"),
        "tokens_dir": Param(None, type=["null", "string"], description="token shards (default: OUT_DIR/tokens)"),
        "audit_dir": Param(None, type=["null", "string"], description="audit output (default: OUT_DIR/audit)"),
        "preset": Param("tiny", type="string", description="model size preset"),
        "max_steps": Param(200, type="integer", minimum=1, description="training steps"),
        "use_audit_weights": Param(True, type="boolean",
                                   description="reweight sampling with the audit's weights.json when present"),
        "num_samples": Param(4, type="integer", minimum=1, description="samples to generate"),
        "prompts": Param(None, type=["null", "array"], description="captions to sample (default: held-out ones)"),
        "seed": Param(0, type="integer"),
    },
)
def train_evaluate():
    @task
    def train(params=None) -> dict:
        from pathlib import Path

        from cadenza import orchestration as o

        dirs = o.stage_dirs(params["out_dir"])
        weights = Path(params["audit_dir"] or dirs["audit"]).expanduser() / "weights.json"
        return o.train(params["tokens_dir"] or dirs["tokens"], dirs["run"], preset=params["preset"],
                       max_steps=params["max_steps"], seed=params["seed"],
                       weights=str(weights) if params["use_audit_weights"] and weights.is_file() else None)

    @task
    def sample(run: dict, params=None) -> dict:
        from cadenza import orchestration as o

        return o.sample(run["dir"], o.stage_dirs(params["out_dir"])["samples"], num_samples=params["num_samples"],
                        prompts=params["prompts"], seed=params["seed"])

    @task
    def evaluate(run: dict, samples: dict, params=None) -> dict:
        from cadenza import orchestration as o

        return o.evaluate(run["dir"], samples["dir"], o.stage_dirs(params["out_dir"])["eval"])

    @task
    def audit_breakdown(evaluation: dict, params=None) -> dict:
        from pathlib import Path

        from cadenza import orchestration as o

        dirs = o.stage_dirs(params["out_dir"])
        assignments = Path(params["audit_dir"] or dirs["audit"]).expanduser() / "assignments.jsonl"
        if not assignments.is_file():
            raise o.StageError("audit_breakdown", f"no audit assignments at {assignments}: run musiccaps_ingest "
                                                  "(or `cadenza audit`) first, or set audit_dir")
        return o.audit_breakdown(evaluation["report"], str(assignments), f"{dirs['eval']}/audit_breakdown.json")

    run = train()
    samples = sample(run)
    audit_breakdown(evaluate(run, samples))


train_evaluate()
