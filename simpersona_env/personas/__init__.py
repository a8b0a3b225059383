"""Buyer types: the behaviour-aware VQ-VAE, one-pass assignment, per-merchant populations,
the report that explains each type, and the quality checks against k-means.

Modules (import what you need; only ``model``, ``train`` and ``assign`` load torch):

- :mod:`.data`: buyer tables -> standardized arrays, validation, loading ingest outputs;
- :mod:`.model`: ``PersonaVQVAEConfig``, ``PersonaVQVAE``, ``VQVAEOutput``;
- :mod:`.train`: ``TrainConfig``, ``train_personas``, ``plot_curves``;
- :mod:`.assign`: ``PersonaModel`` (``assign``, ``save``), ``load_checkpoint``;
- :mod:`.population`: ``Population`` (``shares``, ``sample(n, seed)``), JSON I/O;
- :mod:`.report`: ``type_stats``, ``describe_type``, ``write_report``;
- :mod:`.baselines`: ``KMeansBaseline``;
- :mod:`.quality`: metrics and ``evaluate_personas``.

See docs/personas.md.
"""
