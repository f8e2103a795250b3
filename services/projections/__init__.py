"""Projections: the lookup streams kept in step with the log, written in the publish transaction (the
facts the publish rules read, the case and plan index, school lists and reports, identity links). They hold
identifiers, never decide access.
"""
