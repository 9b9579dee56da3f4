"""One module per catalog model, each with ``SPEC`` (or ``SPECS`` for one build serving several names) and its build
and evaluation; ``*_common`` modules hold what a scenario's models share. The scenario modules (``nlp``, ``vision``,
...) are aliases kept for the import paths they had before. Importing any of them loads no numpy or torch."""
