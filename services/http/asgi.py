"""The API as an ASGI application built from the process's environment: what ``tsunagu serve --workers N`` runs
in each of its worker processes, and what a deployment may run with uvicorn (or gunicorn's uvicorn worker) itself:

    uvicorn --factory services.http.asgi:app_from_env --workers 4 --host 127.0.0.1 --port 8080 \
        --proxy-headers --forwarded-allow-ips 127.0.0.1

**Why a factory.** uvicorn starts each worker as a new process and imports the application there by name; an
app built in the parent (a ``Hub`` with its connection pool, the key files) cannot be handed over. Each worker
therefore builds its own hub on the same database. Everything that must be the same in every worker is outside
the process: the store and its settings (PostgreSQL), the signing keys (``TSUNAGU_SIGNING_KEY_FILE``), the
session cookie's key (derived from the deployment's stream secret), the rate-limit counters
(``TSUNAGU_RATE_LIMIT_STORAGE``, a Redis: ``services.http.limits``).

**Configuration** (the variables of ``tsunagu serve``): ``TSUNAGU_DATABASE_URL``, ``TSUNAGU_KEYS_FILE`` (or
``TSUNAGU_MASTER_KEY`` + ``TSUNAGU_STREAM_SECRET``), ``TSUNAGU_SIGNING_KEY_FILE`` (must exist: a worker never
creates it, so that N workers cannot each create a different one), ``TSUNAGU_OIDC_*`` and ``TSUNAGU_WEB_HTTPS``
for the staff UI, ``TSUNAGU_RATE_LIMIT*``, ``TSUNAGU_REQUEST_THREADS`` and ``TSUNAGU_TURN_LOCK_TIMEOUT``. The
development provider (``TSUNAGU_DEV_OIDC=1``) is refused: its
signing key and sign-in codes live in one process's memory, so a second worker would not know them.

``build_app`` is the one place where the served app is put together, for one process (``tsunagu serve``) as
for the workers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.auth.dev_provider import DEV_OIDC_ENV, DevProvider, dev_oidc_enabled
from services.auth.oidc import OidcProvider, OidcSettings
from services.auth.tokens import KEY_FILE_ENV, KeyFileError, TokenIssuer, TokenVerifier, key_file_path, keys_from_file
from services.http.app import create_app
from services.http.threads import request_threads_from_env
from services.hub import Hub
from services.runtime import freeze_startup_heap, start_serving_process
from services.web.session import CLIENT_SECRET_ENV, HTTPS_ENV, WebSettings, session_key_from


def build_app(
    hub: Hub,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    oidc: OidcSettings | None,
    dev: DevProvider | None = None,
) -> FastAPI:
    """The served app on ``hub``: the API, its token endpoint, and the staff UI when a sign-in provider
    (``oidc``, or the development provider ``dev``) is configured, the UI being that provider's client; its
    request threads bounded (``create_app``, ``TSUNAGU_REQUEST_THREADS``). ``ValueError`` naming the setting when
    that is not a positive integer."""
    settings = oidc or (dev.settings if dev is not None else None)
    web = None
    if settings is not None:
        web = WebSettings(
            issuer=settings.issuer,
            client_id=settings.audience,
            client_secret=os.environ.get(CLIENT_SECRET_ENV) or None,
            session_key=session_key_from(hub.store.keyring.stream_secret),
            https=(os.environ.get(HTTPS_ENV) or "").strip().lower() in ("1", "true", "yes", "on"),
        )
    return create_app(
        hub,
        verifier,
        issuer=issuer,
        dev_oidc=dev,
        oidc=OidcProvider.from_settings(settings) if settings else None,
        web=web,
    )


def app_from_env() -> FastAPI:
    """The app of one worker process, configured by the environment (see the module); the hub is closed when
    the worker shuts down. ``RuntimeError`` saying what to set when the configuration cannot be used."""
    if dev_oidc_enabled():
        raise RuntimeError(
            f"{DEV_OIDC_ENV}=1: the development sign-in runs in one process only (its key and codes are in memory); "
            "run 'tsunagu serve' without --workers / 開発用ログインは1プロセスでのみ使えます"
        )
    try:
        request_threads_from_env()  # checked before anything is opened (create_app reads it again)
        oidc = OidcSettings.from_env()
        issuer, verifier = keys_from_file(key_file_path(), create=False)
    except (ValueError, KeyFileError) as error:
        raise RuntimeError(f"{error} (the signing key file is ${KEY_FILE_ENV}, created by 'tsunagu keys')") from error
    start_serving_process()  # services.runtime: this worker's collector thresholds (spawned: not inherited)
    hub = Hub()  # TSUNAGU_DATABASE_URL
    return served_app(hub, issuer, verifier, oidc, close=hub.close)


def served_app(
    hub: Hub,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    oidc: OidcSettings | None,
    dev: DevProvider | None = None,
    *,
    close: Callable[[], None] | None = None,
) -> FastAPI:
    """The app a serving process serves (``build_app``), built once before it serves anything, and then the
    process's startup heap frozen (``services.runtime.freeze_startup_heap``): the one way both serving paths end
    their startup, a worker of ``app_from_env`` and the one process of ``tsunagu serve``. ``close``: called when
    the app's lifespan ends (a worker closes its hub so). Never for an app that a process builds more than once
    (the tests build theirs with ``build_app``)."""
    app = build_app(hub, issuer, verifier, oidc, dev)
    if close is not None:
        _close_on_shutdown(app, close)
    freeze_startup_heap()  # full collections walk what reads add, not the startup heap
    return app


def _close_on_shutdown(app: FastAPI, close: Callable[[], None]) -> None:
    """Call ``close`` when the app's lifespan ends (the worker stops), after the app's own shutdown.

    The app's lifespan context is wrapped in place: ``create_app`` owns the ``FastAPI(...)`` call, and a worker's
    hub is this module's to close, not ``create_app``'s."""
    inner: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(instance: Any) -> AsyncIterator[Any]:
        try:
            async with inner(instance) as state:
                yield state
        finally:
            close()

    app.router.lifespan_context = lifespan
