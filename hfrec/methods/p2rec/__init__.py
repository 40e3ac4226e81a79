"""P2Rec (preference parsing): latent categories, the parser's examples, trainer and config, item embeddings for SR
models, and the end-to-end script. The model itself is ``hfrec.models.p2rec`` (self-contained, so
``trust_remote_code`` works)."""
