"""Audit: replaying access records under the policy version they name, the hash chains and their signed
anchors, and the auditors' questions (who read, what a reader saw, emergencies, the family's 開示 report).
"""
