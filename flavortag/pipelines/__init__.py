"""The pipelines: the whole work of each command, on typed settings (docs/DESIGN.md, "Apps parse; pipelines run").

One module per command: :mod:`.train`, :mod:`.tune`, :mod:`.evaluate`,
:mod:`.predict`, :mod:`.compare`, :mod:`.robustness`, :mod:`.calibrate`,
:mod:`.export`, :mod:`.generate`. An app (:mod:`flavortag.apps`) parses the
command line into a pipeline's settings and calls its one function; a
pipeline calls the libraries below it and opens MLflow runs through
:mod:`flavortag.tracking`. Nothing here reads a Hydra config; nothing below
imports a pipeline.
"""
