"""The HTTP API (an edge): the FastAPI app factory, one router per area, the dependencies in one place, and
the limits on what comes in.
"""
