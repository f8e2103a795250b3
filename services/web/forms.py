"""A staff UI form's fields, read before its handler runs, so that every handler of the UI is a plain ``def``.

**Why**: reading a request's body is asynchronous (``await request.form()``), and the handler's work after it is
not: a recorded read (``TimelineReader.record``, which waits for the child's turn), a publish, rendering. An
``async def`` handler does that work on the event loop, where a wait for a child held by another writer (up to
``TSUNAGU_TURN_LOCK_TIMEOUT``) stops the whole process, ``/v1/health`` and accepting connections included. A plain
``def`` handler runs in a request thread (under ``TSUNAGU_REQUEST_THREADS``, ``services.http.threads``), where such
a wait keeps one thread only. So the form is read here, in a dependency (``async``, on the event loop, which only
reads the body), and handed to the handler: ``form: Annotated[FormData, posted_form(max_files=0,
max_fields=20)]``. Replaces ``async def`` handlers that awaited ``request.form()`` and then did the hub's work on
the loop. The form's uploaded files are closed after the handler (the dependency's exit).

**Signed in before the body is read**: the dependency first checks that the request has a signed-in person
(``signed_in``, the session cookie only: no hub work on the event loop), and sends one who is not to the sign-in
page (``NotSignedIn``, answered by ``to_signin_page``, 303 to ``/ui/login``), so that no anonymous body is parsed or
spooled to disk, as when the handlers read their forms themselves after the check. The role's scope is checked
before it too (``services.web.scopes.require_scope``, the page routers' dependency, resolved before a
handler's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from services.web.pages import to_signin
from services.web.session import signed_in


class NotSignedIn(Exception):
    """A form was posted without a signed-in person (answered by ``to_signin_page``)."""


def to_signin_page(request: Request, error: Exception) -> RedirectResponse:
    """``NotSignedIn``'s answer: the sign-in page, as a handler gives a person who is not signed in."""
    return to_signin()


def posted_form(*, max_files: int, max_fields: int) -> Any:
    """The dependency that reads the request's form (at most ``max_files`` files and ``max_fields`` fields, as
    ``Request.form``), and closes its files once the handler is done; ``NotSignedIn`` before the body is read when
    no one is signed in."""

    async def read_form(request: Request) -> AsyncIterator[FormData]:
        if signed_in(request) is None:
            raise NotSignedIn
        form = await request.form(max_files=max_files, max_fields=max_fields)
        try:
            yield form
        finally:
            await form.close()

    return Depends(read_form)
