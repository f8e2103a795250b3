"""Who may see a school's target list and the state of its periodic reports (定期的な情報提供).

Pure, like the read policy: the services pass the reader's organisation and the listing's parties in.
"""

from __future__ import annotations

from events.model import Org

LISTING_CENTRES = frozenset({"municipal_center", "child_guidance_center"})
REPORTING_ORGS = frozenset({"school", "nursery"})


def may_see_listing(reader: Org | None, school: str, centre: str) -> bool:
    """May ``reader`` see that a child is on ``school``'s target list assigned by ``centre``, and which of the
    child's monthly reports are missing?

    The list is the request of the 要対協 (児童福祉法第25条の3: the council, through its coordinating body,
    asks a related body for information), addressed to one school about named children. Only the two parties
    to that request know it: the centre (or 児童相談所) that made it, for its own lists, and the school or
    nursery it was addressed to, for its own list. Being on the list reveals that a child is known to the
    要対協, which the 守秘義務 of 第25条の5 protects; no one else learns it, not another centre, not another
    school. Deny by default.
    """
    if reader is None:
        return False
    if reader.type in REPORTING_ORGS:
        return reader.id == school
    if reader.type in LISTING_CENTRES:
        return reader.id == centre
    return False
