"""Tokenizers: semantic (k-means over frame features), acoustic (EnCodec), text (MiniLM embeddings)."""
