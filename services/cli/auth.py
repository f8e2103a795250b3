"""``tsunagu clients`` (adapters' machine clients) and ``tsunagu keys`` (the API's token signing keys).

- ``clients add --org ORG --scopes publish,read``: register the organisation's client; prints its id and its
  secret, once (only a hash is kept). ``clients list``, ``clients rotate-secret CLIENT_ID`` (a new secret, the old
  one stops working), ``clients disable CLIENT_ID`` (its tokens are refused from then on). ``services.auth.clients``.
- ``keys list``, ``keys rotate`` (a new signing key; the old ones keep verifying), ``keys retire KID`` (tokens it
  signed are refused from then on). A running ``tsunagu serve`` on the same key file picks the change up without a
  restart. ``services.auth.SigningKeys``.

Registered on the ``tsunagu`` command by ``services/cli/root.py`` importing this module.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from events.problems import Rejected
from services.auth.clients import Client, add_client, disable_client, list_clients, rotate_secret
from services.auth.tokens import SCOPES, KeyFileError
from services.cli.root import Database, app, err, fail, login_name, out, signing_keys
from services.cli.serve import KeyFile, _open_hub

clients_app = typer.Typer(
    help="Machine clients of organisations' adapters (OAuth 2.0 client credentials).", no_args_is_help=True
)
keys_app = typer.Typer(help="The API's token signing keys: list, rotate, retire.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")

AsJson = Annotated[bool, typer.Option("--json", help="The result as JSON.")]
ClientId = Annotated[str, typer.Argument(help="The client's id (tc_…), from 'tsunagu clients list'.")]


def _refused(rejected: Rejected) -> None:
    for p in rejected.problems:
        err.print(f"[red]refused[/red] {p.field or '-'}: {p.message} / {p.message_ja}")
    raise typer.Exit(1)


def _show_secret(client: Client, secret: str, as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps(client.to_dict() | {"client_secret": secret}, ensure_ascii=False))
        return
    out.print(what)
    print(f"client_id:     {client.client_id}")
    print(f"client_secret: {secret}")
    out.print(f"organisation {client.org}, scopes {' '.join(client.scopes)}")
    err.print(
        "The secret is shown only now: give it to the adapter's operator through a safe channel. / "
        "シークレットは今だけ表示されます。安全な方法でアダプターの担当者に渡してください。"
    )


@clients_app.command("add")
def clients_add(
    org: Annotated[str, typer.Option(help="The registered organisation the client acts for.")],
    scopes: Annotated[
        str,
        typer.Option(
            help=f"Comma-separated, among {', '.join(SCOPES)} (an adapter usually needs publish, perhaps read)."
        ),
    ],
    database: Database = None,
    as_json: AsJson = False,
) -> None:
    """Register ORG's client (one enabled client per organisation); prints its id and its secret, once."""
    hub = _open_hub(database)
    try:
        client, secret = add_client(hub, org=org, scopes=scopes.replace(",", " ").split(), by=login_name())
    except Rejected as rejected:
        _refused(rejected)
    finally:
        hub.close()
    _show_secret(client, secret, as_json, "client registered / クライアントを登録しました")


@clients_app.command("list")
def clients_list(database: Database = None, as_json: AsJson = False) -> None:
    """Every client, enabled or not (never their secrets)."""
    hub = _open_hub(database)
    try:
        clients = list_clients(hub.store)
    finally:
        hub.close()
    if as_json:
        print(json.dumps([c.to_dict() for c in clients], ensure_ascii=False))
        return
    table = Table("client_id", "org", "scopes", "enabled", "registered", "secret rotated", "disabled")
    for c in clients:
        table.add_row(
            c.client_id,
            c.org,
            " ".join(c.scopes),
            "yes" if c.enabled else "no",
            c.registered_at,
            c.secret_rotated_at or "",
            c.disabled_at or "",
        )
    out.print(table)


@clients_app.command("rotate-secret")
def clients_rotate_secret(client_id: ClientId, database: Database = None, as_json: AsJson = False) -> None:
    """Give the client a new secret (printed once); the old one stops working at once."""
    hub = _open_hub(database)
    try:
        client, secret = rotate_secret(hub, client_id, by=login_name())
    except Rejected as rejected:
        _refused(rejected)
    finally:
        hub.close()
    _show_secret(client, secret, as_json, "new secret / 新しいシークレット")


@clients_app.command("disable")
def clients_disable(client_id: ClientId, database: Database = None, as_json: AsJson = False) -> None:
    """Disable the client: no new tokens, and the tokens it holds are refused from now on."""
    hub = _open_hub(database)
    try:
        client = disable_client(hub, client_id, by=login_name())
    except Rejected as rejected:
        _refused(rejected)
    finally:
        hub.close()
    if as_json:
        print(json.dumps(client.to_dict(), ensure_ascii=False))
    else:
        out.print(f"client {client.client_id} ({client.org}) disabled / 無効化しました")


@keys_app.command("list")
def keys_list(key_file: KeyFile = None, as_json: AsJson = False) -> None:
    """The keys of the key file, oldest first: the last one signs, all verify (and are in the JWKS)."""
    infos = signing_keys(key_file).keys()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "kid": i.kid,
                        "added": i.added.isoformat() if i.added else None,
                        "signing": i.signing,
                        "replaced": i.replaced.isoformat() if i.replaced else None,
                    }
                    for i in infos
                ]
            )
        )
        return
    table = Table("kid", "added", "signs", "stopped signing")
    for i in infos:
        table.add_row(
            i.kid,
            i.added.isoformat() if i.added else "",
            "yes" if i.signing else "",
            i.replaced.isoformat() if i.replaced else "",
        )
    out.print(table)


@keys_app.command("rotate")
def keys_rotate(key_file: KeyFile = None) -> None:
    """Add a new signing key; the others keep verifying until retired. Prints the new key's kid."""
    keys = signing_keys(key_file)
    try:
        key = keys.rotate()
    except KeyFileError as error:
        fail(str(error))
    print(key.kid)
    err.print(
        f"new signing key in {keys.path}; retire the old one once its tokens have expired ('tsunagu keys "
        f"retire KID') / 新しい署名鍵を追加しました"
    )


# A kid is a base64url thumbprint: one in 64 starts with "-", which must not be taken for an option.
@keys_app.command("retire", context_settings={"ignore_unknown_options": True})
def keys_retire(
    kid: Annotated[str, typer.Argument(help="The key's kid, from 'tsunagu keys list'.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Even if tokens it signed may not have expired yet, or it signed the newest anchor."
        ),
    ] = False,
    key_file: KeyFile = None,
    database: Database = None,
) -> None:
    """Remove a key that no longer signs: the tokens it signed, and the access-log anchors it signed ('tsunagu
    audit anchor': make a new one first), are refused from then on. Refused for the key that signed the newest
    anchor the hub made."""
    from services.audit.anchors import retire_signing_key

    keys = signing_keys(key_file)
    hub = _open_hub(database)
    try:
        retire_signing_key(hub.store, keys, kid, force=force)
    except KeyFileError as error:
        fail(str(error))
    finally:
        hub.close()
    err.print(f"key {kid} retired from {keys.path} / 署名鍵を廃止しました")
