"""Adapters: one module per kind of organisation. They parse what an organisation sends (files, feeds) into
event envelopes and hand them to a ``Publisher``. They never decide who may read anything."""
