"""Tokenize: audio shards -> token shards. `run` holds `TokenizeConfig` and `run_tokenize`; `setup` fixes the
tokenizers before any shard is written; `dofns` are the Beam steps.
"""
