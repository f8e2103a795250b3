"""Audit: replaying access records under the policy version they name, the hash chains and their signed
anchors, and the auditors' questions (who read, what a reader saw, emergencies, the family's 開示 report).

- ``replay``, ``anchors``: the log's proofs (replay, hash chains, signed anchors).
- ``queries``: reading the access records (periods, one child's records, a period of the whole log, one record).
- ``service``: ``Auditing``, the auditors' questions, each recorded in the asker's trail first (``trail``).
- ``models``: the answers (the HTTP API's response models); ``impact``: policy impact; ``disclosure``: the
  family's 開示 report and its printable page.
"""
