"""What a signed-in person's role lets them do in the staff UI: the same scopes as the API
(``services.auth.tokens.ROLE_SCOPES``), checked once for every page router (``install_web``), so that no page can
forget it.

- pages under ``/ui/admin`` need ``admin``; pages under ``/ui/audit`` need ``audit``;
- every other page needs ``read`` to be opened and ``publish`` to be sent (a form's POST);
- the start page (``/ui/``) and the addresses that only redirect to it are open to every signed-in person: the
  start page shows a role's counts only when the role may read (``services.web.pages.start``).

So an administrator (``hub_admin``: scope ``admin`` only) signed in for a centre or a school reads no child in the
browser, as the API refuses the same person's timeline read. A person who is not signed in passes here and is sent
to the sign-in page by the page itself.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from services.auth.tokens import ROLE_SCOPES
from services.web.pages import page
from services.web.session import Person, signed_in

OPEN_TO_EVERY_ROLE = frozenset({"/", "/ui", "/ui/"})
MISSING_JA = {  # what the 403 page says, by the scope the page needed
    "admin": "ハブの管理者だけが利用できる画面です。",
    "audit": "監査・個人情報保護担当の機関だけが利用できる画面です。",
    "read": "いまの役割ではこの画面を使えません。必要な場合は、役割を選び直してください。",
    "publish": "いまの役割ではこの画面を使えません。必要な場合は、役割を選び直してください。",
}


def scope_needed(method: str, path: str) -> str | None:
    """The scope a request of the staff UI needs (None: any signed-in person)."""
    if path in OPEN_TO_EVERY_ROLE:
        return None
    if path == "/ui/admin" or path.startswith("/ui/admin/"):
        return "admin"
    if path == "/ui/audit" or path.startswith("/ui/audit/"):
        return "audit"
    return "read" if method in ("GET", "HEAD") else "publish"


def may(person: Person, scope: str) -> bool:
    """Whether ``person``'s role carries ``scope``."""
    return scope in ROLE_SCOPES.get(person.role, frozenset())


class ScopeMissing(Exception):
    """The signed-in person's role does not carry the scope the page needs (answered 403 by ``refusal``)."""

    def __init__(self, person: Person, scope: str):
        super().__init__(f"role {person.role!r} lacks scope {scope!r}")
        self.person = person
        self.scope = scope


def require_scope(request: Request) -> None:
    """The dependency of every page router: refuse a request whose person's role lacks the scope it needs."""
    person = signed_in(request)
    if person is None:
        return
    needed = scope_needed(request.method, request.url.path)
    if needed is not None and not may(person, needed):
        raise ScopeMissing(person, needed)


def refusal(request: Request, error: Exception) -> HTMLResponse:
    """The 403 page for ``ScopeMissing``: says the role cannot use the page, and nothing of what it holds. A plain
    function, which Starlette runs in a thread: the page reads the hub's registry (``pages.page``)."""
    assert isinstance(error, ScopeMissing)
    return page(
        request,
        "web/error.html",
        error.person,
        status_code=403,
        title="この画面は使えません",
        message=MISSING_JA.get(error.scope, MISSING_JA["read"]),
    )
