"""Aggregates for planners (集計, ``../shared/spec/aggregates.md``): the counts per municipality and month that
``services.projections.municipal_counts`` keeps in step with the log, read as figures (levels summed up), rebuilt
from the log on demand (``figures``), protected by small-cell suppression (``suppression``), and given to the
readers the spec names with a hash-chained record of every request (``service``).

What is not built is said in ``services.projections.municipal_counts``.
"""
