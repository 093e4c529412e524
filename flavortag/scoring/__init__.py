"""Scoring: events in, class probabilities and discriminants out, in one room.

- :mod:`~flavortag.scoring.tagger`: :class:`Tagger`, the scorer. ``Tagger.predict``
  is the one place where events become probabilities (calibration resolved,
  model inputs built as the model was trained, the model called); ``predict``,
  ``evaluate``, ``robustness``, the training's own evaluation and analysis code
  all score through it.
- :mod:`~flavortag.scoring.inference`: what a tagger is (torch or BDT), its input
  shape, its classes, loading it from a run, a URI or a checkpoint file, and the
  batched model call ``Tagger`` makes.
- :mod:`~flavortag.scoring.prediction`: ``flavortag predict``'s files: each input
  streamed chunk by chunk through a ``Tagger`` into ``<stem>.flavortag.<format>``.

What a score column is (``prob_<class>``, ``D_b``, ``D_c``) is
:func:`flavortag.metrics.score_columns`.
"""
