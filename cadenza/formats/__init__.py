"""What each stage writes and the next reads: the on-disk contracts, in one layer.

Shard layout and completion markers (`shards`), the fsspec helpers every writer uses (`storage`),
per-shard tables and the dataset index (`tables`, `index`), failure records and which side a failure
blames (`failures`), audio samples (`audio`), token samples and their spec (`token_spec`,
`token_samples`, `tarscan`); and the defaults every layer shares (`defaults`). Imports neither torch nor Beam.
"""
