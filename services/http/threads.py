"""Request threads, bounded: how many requests of one API process run their blocking work at once.

The API's endpoints (and their dependencies) are plain functions; FastAPI runs each in a thread of anyio's pool,
under anyio's default thread limiter, 40 threads by default. On one process those threads and the event loop take
turns at one interpreter lock: from 2 to 8 clients one process fell from 117–121 to 92 requests/s, its CPU per
request rising from 8 to 11–12 ms and its context switches from 96 to 240 a request (``docs/benchmarks.md``,
"Saturating HTTP load, session 6"). In that trial, with the limiter at 2 it held flat (116.9 / 121.2 / 119.7
requests/s at 2 / 4 / 8 clients), and again on a quiet machine after session 7's merge (2 threads: 135–142 requests/s
at 8 clients, 40: 95–117; "After the merge (session 7)"). The default stays anyio's 40 all the same, for what a
small bound costs (below).

**A named mechanism, ``bound_request_threads``**: at each worker's start-up (the app's lifespan, inside the
worker's event loop, where anyio keeps its default limiter) the default limiter is given
``TSUNAGU_REQUEST_THREADS`` tokens (``DEFAULT_REQUEST_THREADS``, 40, anyio's own; a deployment that has measured a
gain from fewer sets fewer; more requests queue in the event loop). It applies to every plain endpoint of every
app ``services.http.app.create_app`` builds: ``tsunagu serve`` with one worker, each worker of ``--workers N`` and
of ``uvicorn --factory services.http.asgi:app_from_env``, and the tests' apps (``TestClient`` used with ``with``,
which runs the lifespan).

What a small bound costs: a request that waits for a child's turn held by another process
(``events.store.HubStore.append_in_turn``) keeps its thread while it waits, up to ``TSUNAGU_TURN_LOCK_TIMEOUT``
(5 s), then gives up with 503 ``busy`` and ``Retry-After``; with a bound of a few threads, a few such requests
keep every thread and the process's other requests queue behind them for that long. ``/v1/health`` runs on a
limiter of its own (``run_health_check``), so that a load balancer sees the process up while every request thread
waits. The staff UI shares the request threads with the API: its handlers are plain functions too, their forms
read by a dependency (``services.web.forms``), so that no hub work runs on the event loop. During a PostgreSQL
restart a request keeps its thread while it waits for a connection from the pool (``POSTGRES_CONNECT_TIMEOUT``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from anyio.lowlevel import RunVar
from fastapi import FastAPI

T = TypeVar("T")

REQUEST_THREADS_SETTING = "TSUNAGU_REQUEST_THREADS"
DEFAULT_REQUEST_THREADS = 40  # anyio's own default; fewer only where measured (the module's docstring)
HEALTH_THREADS = 1  # /v1/health's own: one store query of a millisecond at a time

_HEALTH_LIMITER: RunVar[CapacityLimiter] = RunVar("tsunagu_health_limiter")


def request_threads_from_env(environ: Mapping[str, str] = os.environ) -> int:
    """The request threads of a process: ``TSUNAGU_REQUEST_THREADS`` (default ``DEFAULT_REQUEST_THREADS``).
    ``ValueError`` naming the setting when it is not a positive integer."""
    value = (environ.get(REQUEST_THREADS_SETTING) or "").strip()
    if not value:
        return DEFAULT_REQUEST_THREADS
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise ValueError(
            f"{REQUEST_THREADS_SETTING}={value!r}: give a positive integer, the number of requests one API process "
            f"runs at once (default {DEFAULT_REQUEST_THREADS}) / {REQUEST_THREADS_SETTING} は1以上の整数で指定して"
            "ください"
        )
    return int(value)


def bound_request_threads(app: FastAPI, threads: int) -> None:
    """Give anyio's default thread limiter ``threads`` tokens when ``app`` starts (its lifespan, in the worker's
    event loop), before it serves a request (see the module). The app's lifespan context is wrapped in place, as
    ``services.http.asgi`` does to close a worker's hub."""
    if threads < 1:
        raise ValueError(f"request threads: {threads} (at least 1)")
    inner: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(instance: Any) -> AsyncIterator[Any]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        async with inner(instance) as state:
            yield state

    app.router.lifespan_context = lifespan


async def run_health_check(check: Callable[[], T]) -> T:
    """``check()`` in a thread of ``/v1/health``'s own limiter (``HEALTH_THREADS``, one per event loop), not under
    the request threads' bound: the health check answers while every request thread waits."""
    try:
        limiter = _HEALTH_LIMITER.get()
    except LookupError:
        limiter = CapacityLimiter(HEALTH_THREADS)
        _HEALTH_LIMITER.set(limiter)
    return await anyio.to_thread.run_sync(check, limiter=limiter)
