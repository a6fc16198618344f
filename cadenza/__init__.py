"""cadenza: MusicCaps to training-ready shards, bias audits, and small MusicLM-style models."""

__version__ = "0.1.0"
