"""``sarzoo bench``: every fast-path variant of a recipe measured side by side, in one run.

Why a package of its own, on the training layer: the benchmark times the trainer's own step
(``sarzoo.train.assembly``), so it sits beside ``sarzoo.train`` and only commands use it. One
concept per module: ``modes`` (which runtime overrides each measured variant is), ``worker``
(one mode measured in its own process, so its peak memory is its own), ``peaks`` (the machine's
matrix-multiply peaks and the recipe's FLOPs), ``loader`` (the training data's throughput and
where the data lives), ``numerics`` (fast path against fp32 from the same seed) and ``run``
(orchestration: everything into one dict). Import-light: torch loads inside the functions.
"""
