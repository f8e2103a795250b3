"""The Japanese names of the hub's codes, for people: roles (more to come here: kinds, categories, case types,
rules, bases, purposes — one vocabulary the CLI, the pages and the exports share)."""

from __future__ import annotations

ROLE_JA = {
    "caseworker": "児童福祉の担当職員",
    "health_nurse": "保健師",
    "supervisor": "統括支援員",
    "teacher": "教員",
    "school_admin": "学校の管理職",
    "nursery_staff": "保育士等",
    "provider_staff": "事業者の職員",
    "clerk": "事務職員",
    "auditor": "監査担当",
    "adapter": "連携システム",
}
