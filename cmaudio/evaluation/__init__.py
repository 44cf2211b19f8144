"""Evaluation of generated audio: how good it is, and how fast it is made.

- ``metrics``: the measures themselves (Frechet distances, inception scores, precision/recall,
  pitch by pYIN, silence and clipping rates).
- ``classifier``: the recipe classifiers whose embeddings and predictions score generated clips
  (trained by cmaudio.training.classifier).
- ``clips``: the real clips of a split, the labels generated clips are asked for, pitch targets.
- ``scoring``: every metric that applies to a set of clips against a reference set.
- ``report``: quality against network calls (``evaluate``) and its report files.
- ``search_metrics`` and ``search``: tuning a consistency model's intermediate sigmas.
- ``bench``: generation throughput.

The command lines are python -m cmaudio.evaluate and python -m cmaudio.bench.
"""
