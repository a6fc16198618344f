"""Train and evaluate an EnCodec (transformers' `EncodecModel`) on your own audio shards.

Offline there are no Meta weights, so cadenza trains the same architecture on the user's audio: the
result is a `save_pretrained` directory that tokenize, sample and evaluate load exactly as they load
facebook/encodec_24khz. `cadenza codec eval` measures any codec, per audit group.
"""
