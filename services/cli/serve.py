"""``tsunagu serve`` (the HTTP API) and ``tsunagu token issue`` (bearer tokens for it, for development).

``serve`` runs the API with its token endpoint (``services.auth.oauth_server``) on the signing keys of ``--key-file``, staff
sign-in through the OpenID provider of ``TSUNAGU_OIDC_*`` (``services.auth.oidc``), and, with ``TSUNAGU_DEV_OIDC=1``,
the development provider (``services.auth.dev_provider``), which it trusts itself when no other provider is configured, and
which it serves on a loopback address only (127.0.0.1, ::1, localhost).

Registered on the ``tsunagu`` command by ``services/cli/root.py`` importing this module.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from services.auth.tokens import (
    DEFAULT_KEY_FILE,
    DEFAULT_LIFETIME,
    KEY_FILE_ENV,
    MAX_LIFETIME,
    ROLE_SCOPES,
    ROLES,
    SCOPES,
    KeyFileError,
    TokenIssuer,
    TokenVerifier,
    key_file_path,
    keys_from_file,
)
from services.cli.root import Database, app, err, fail
from services.hub import Hub

token_app = typer.Typer(help="Bearer tokens for the HTTP API.", no_args_is_help=True)
app.add_typer(token_app, name="token")

# typer shows and checks the choices. Made from ROLES, so that the roles are listed once; mypy reads only enums
# whose members are written out, hence the one ignore.
Role = Enum("Role", {r: r for r in sorted(ROLES)}, type=str)  # type: ignore[misc]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar=KEY_FILE_ENV,
        help=f"PEM file of the EC P-256 signing keys (default ./{DEFAULT_KEY_FILE}; created, mode 0600, when "
        f"missing). The last key signs, all verify ('tsunagu keys').",
    ),
]


def _keys(key_file: Path | None) -> tuple[TokenIssuer, TokenVerifier]:
    path = key_file_path(key_file)
    existed = path.exists()
    try:
        keys = keys_from_file(path, create=True)
    except KeyFileError as error:
        fail(str(error))
    if not existed:
        err.print(
            f"created a new signing key in {path} (for development; production deployments provide "
            f"their own with --key-file or ${KEY_FILE_ENV})"
        )
    return keys


def _open_hub(database: str | None) -> Hub:
    try:
        return Hub(database)
    except ValueError as error:  # an unsupported database URL, a bad setting in the environment
        fail(str(error))
        raise  # unreachable: fail() exits


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    database: Database = None,
    key_file: KeyFile = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes (uvicorn), each with its own hub on the same database "
            "(services.http.asgi). Above 1: PostgreSQL, and TSUNAGU_RATE_LIMIT_STORAGE=async+redis://… so that "
            "the workers share the rate limits; not with the development sign-in.",
        ),
    ] = 1,
) -> None:
    """Run the HTTP API (OpenAPI at /docs) and its token endpoint (/oauth/token). A key rotation in the key file
    is picked up without a restart."""
    import uvicorn

    from services.auth.dev_provider import (
        DEV_OIDC_ENV,
        LOOPBACK_ONLY_JA,
        PREFIX,
        DevProvider,
        dev_oidc_enabled,
        load_dev_users,
        loopback_only,
    )
    from services.auth.oidc import OidcSettings
    from services.http.asgi import served_app
    from services.http.threads import request_threads_from_env

    if dev_oidc_enabled() and not loopback_only(host):
        fail(
            f"--host {host}: {LOOPBACK_ONLY_JA} (the development sign-in of {DEV_OIDC_ENV}=1 lets anyone sign in "
            f"as anyone: it is served on a loopback address only)"
        )
    if dev_oidc_enabled() and workers > 1:
        fail(
            f"--workers {workers}: the development sign-in of {DEV_OIDC_ENV}=1 keeps its key and sign-in codes in "
            f"one process / 開発用ログインは1プロセスでのみ使えます (--workers 1)"
        )
    try:
        request_threads_from_env()  # checked before anything is opened (build_app reads it again)
        settings = OidcSettings.from_env()
        dev = DevProvider(f"http://{host}:{port}{PREFIX}", load_dev_users()) if dev_oidc_enabled() else None
    except ValueError as error:
        fail(str(error))
        raise  # unreachable: fail() exits
    if dev is not None:
        err.print(f"development sign-in (never in production) / 開発用ログイン: POST {dev.issuer}/token username=…")
    issuer, verifier = _keys(key_file)  # created here when missing, never by the workers
    hub = _open_hub(database)  # checks the URL, brings the store to its format and seeds its settings, once
    if settings is not None or dev is not None:
        err.print(f"staff UI / 職員向け画面: http://{host}:{port}/")
    if workers > 1:
        hub.close()
        _serve_workers(host, port, workers, database, key_file_path(key_file))
        return
    try:
        uvicorn.run(served_app(hub, issuer, verifier, settings, dev), host=host, port=port, log_level="info")
    finally:
        hub.close()


def _serve_workers(host: str, port: int, workers: int, database: str | None, key_file: Path) -> None:
    """uvicorn with ``workers`` processes, each building its app with ``services.http.asgi.app_from_env``; the
    options of this command reach them through the environment they inherit."""
    import uvicorn

    if database is not None:
        os.environ["TSUNAGU_DATABASE_URL"] = database
    os.environ[KEY_FILE_ENV] = str(key_file.resolve())
    err.print(f"{workers} worker processes / ワーカープロセス {workers} 個")
    uvicorn.run(
        "services.http.asgi:app_from_env", factory=True, workers=workers, host=host, port=port, log_level="info"
    )


@token_app.command("issue")
def token_issue(
    org: Annotated[str, typer.Option(help="The registered organisation the token acts for.")],
    role: Annotated[Role, typer.Option(help="The role the holder acts in.")],
    user: Annotated[
        str | None, typer.Option(help="The person (or machine account) holding the token; default ORG:ROLE.")
    ] = None,
    hours: Annotated[
        float, typer.Option(min=0.01, max=MAX_LIFETIME.total_seconds() / 3600, help="Lifetime in hours.")
    ] = DEFAULT_LIFETIME.total_seconds() / 3600,
    scope: Annotated[
        str | None,
        typer.Option(
            help=f"Scopes, comma-separated, among {', '.join(SCOPES)}; default: the role's (read,publish for "
            f"staff, read,audit for auditors, publish for adapters)."
        ),
    ] = None,
    key_file: KeyFile = None,
    database: Database = None,
) -> None:
    """Print a bearer token for ORG acting as ROLE (for development: adapters get theirs from /oauth/token, staff
    sign in). Refuses organisations not registered in the hub."""
    from datetime import timedelta

    scopes = ROLE_SCOPES[role.value] if scope is None else {s for s in scope.replace(",", " ").split()}
    if unknown := sorted(scopes - SCOPES.keys()):
        fail(
            f"unknown scope {', '.join(unknown)}; one of {', '.join(SCOPES)} / 権限「{'、'.join(unknown)}」はありません"
        )

    hub = _open_hub(database)
    try:
        known = org in hub.orgs()
    finally:
        hub.close()
    if not known:
        fail(
            f"organisation {org!r} is not registered in the hub (register it with 'tsunagu orgs load') / "
            f"機関「{org}」はハブに登録されていません"
        )
    if user is not None and not user.strip():
        fail("--user must not be empty / --user が空欄です")
    issuer, _ = _keys(key_file)
    print(
        issuer.issue(
            org=org, role=role.value, user=user or f"{org}:{role.value}", lifetime=timedelta(hours=hours), scopes=scopes
        )
    )
