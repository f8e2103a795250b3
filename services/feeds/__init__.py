"""Feeds from other organisations: JSON-lines, health check-ups and providers' reports, and the Kafka ingest
worker.
"""
