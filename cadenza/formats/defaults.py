"""The defaults more than one layer needs: the CLI, the stage configs, cadenza.stages and the DAGs read them here.

Plain values only, no imports: `cadenza --help` and Airflow's DAG parsing import this module, so it must stay
cheap. Where a layer deliberately differs (the DAGs run a real, shorter or bigger chain), its value is named
here too, beside the one it differs from. tests/test_defaults_agree.py checks that every layer agrees.
"""

from __future__ import annotations

# ---------------------------------------------------------------- sources
MUSICCAPS_CSV_URL = "https://huggingface.co/datasets/google/MusicCaps/resolve/main/musiccaps-public.csv"
ONTOLOGY_URL = "https://raw.githubusercontent.com/audioset/ontology/master/ontology.json"
YOUTUBE_URL_TEMPLATE = "https://www.youtube.com/watch?v={ytid}"

# ---------------------------------------------------------------- ingest
SHARD_SIZE = 500  # clips per audio shard (consecutive valid rows in CSV order)
SAMPLE_RATE = 32000  # Hz of the stored mono FLAC
BEAM_RUNNER = "DirectRunner"

# ---------------------------------------------------------------- codec
CODEC_PRESETS = ("demo", "small", "24khz")  # the keys of cadenza.codec.presets.PRESETS
CODEC_PRESET = "demo"
DAG_CODEC_PRESET = "small"  # musiccaps_ingest trains on real MusicCaps: the hour-scale preset, not the demo's

# ---------------------------------------------------------------- tokenize
ACOUSTIC_CODECS = ("encodec_24khz", "encodec_32khz")  # the keys of cadenza.tokenizers.acoustic.CODECS
ACOUSTIC_CODEC = "encodec_24khz"
TEXT_ENCODER = "minilm"  # or "none"
CLUSTERS = 1024  # semantic k-means clusters when fitted on the input

# ---------------------------------------------------------------- train, sample, evaluate
MODEL_PRESETS = ("tiny", "small")  # the keys of cadenza.training.model.PRESETS and trainer.SIZE_DEFAULTS
MODEL_PRESET = "tiny"
PRECISIONS = ("auto", "fp32", "bf16")  # cadenza.training.trainer's autocast choices
CHAIN_TRAIN_STEPS = 200  # the chain's (stages.train, train_evaluate) run: shorter than the tiny preset's 300
SAMPLE_SECONDS = 10.0
EVAL_SAMPLES = 16  # held-out captions generated from in `cadenza evaluate`
CHAIN_EVAL_SAMPLES = 4  # ... and in the chain's evaluation (stages.evaluate, train_evaluate)
EMBEDDINGS = "mfcc"  # audio embeddings for FD/KAD/adherence: offline
MAX_REFERENCES = 256  # held-out clips decoded as references in an evaluation

# ---------------------------------------------------------------- DAGs
DAG_OUT_DIR = "~/cadenza-data"  # both DAGs' output root: train_evaluate reads what musiccaps_ingest writes
