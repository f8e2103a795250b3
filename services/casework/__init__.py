"""Case work (要対協): case commands, the progress ledger and the 児相's joint ledger, the meeting agenda,
support plans and consent, and case transfers.
"""
