"""The offline demo: a small synthesised MusicCaps-format dataset and the one command that runs the whole chain.

Modules: `synth` renders audio for each musical style (numpy only, seeded), `styles` holds the
MusicCaps-like metadata of each style, `dataset` writes media files and the CSV, `run` runs the chain.
"""
