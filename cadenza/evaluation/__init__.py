"""Evaluation of a trained run on held-out token shards: `evaluate` (the stage), held-out NLL and caption gain,
token statistics and distribution metrics, adherence over audio embeddings, the validity controls, and
the report. Imports torch, never Beam.
"""
