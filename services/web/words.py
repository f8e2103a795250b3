"""The Japanese words the pages use (kinds, rules, roles, organisation types, bases, payload fields), taken from
the hub's vocabulary: never a code or an id where a name exists (ui.md, "Japanese first")."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from events.clock import JST
from events.labels import ROLE_JA
from services.audit.auditors import RULE_JA
from services.casework.ledger import ALERT_JA, CASE_TYPE_JA, CATEGORY_JA, KIND_JA

RULE_BADGE = {  # ui.md: the rule each entry is read under, as a short badge
    "OWN": "自機関の記録",
    "DIRECT": "直接の提供",
    "CASE": "ケース共有",
    "LEDGER": "共同管理台帳",
    "CONSENT": "同意",
    "TRANSFER": "移管",
    "EMERGENCY": "緊急時",
}
ORG_TYPE_JA = {
    "municipal_center": "こども家庭センター",
    "municipal_department": "市町村の部局",
    "child_guidance_center": "児童相談所",
    "prefecture_office": "都道府県",
    "school": "学校",
    "nursery": "保育所等",
    "health_center": "保健所",
    "medical": "医療機関",
    "service_provider": "事業者",
    "auditor": "監査担当",
}
BASIS_JA = {
    "internal": "自機関の記録",
    "cwa-21-10-5": "児童福祉法第21条の10の5（情報提供）",
    "cwa-25": "児童福祉法第25条（通告）",
    "cwa-25-3": "児童福祉法第25条の3（要請による提供）",
    "cwa-25-2": "児童福祉法第25条の2（関係機関での共有）",
    "joint-ledger": "共同管理台帳",
    "commissioned": "委託",
}
FIELD_JA = {
    "summary": "内容",
    "signs": "気づいた様子",
    "text": "記録",
    "observations": "様子",
    "reason": "理由",
    "residence": "居住市町村（コード）",
    "note": "備考",
    "birth_date": "生年月日",
    "name_kana": "ふりがな",
    "month": "対象年月",
    "school_days": "授業日数",
    "attended": "出席日数",
    "absent": "欠席日数",
    "absent_without_contact": "連絡なし欠席",
    "late": "遅刻",
    "early_leave": "早退",
    "reasons": "欠席理由",
    "notes": "特記事項",
    "date": "日付",
    "status": "出欠",
    "days": "日数",
    "since": "開始日",
    "checkup": "健診",
    "findings": "所見",
    "service": "サービス",
    "from": "開始",
    "to": "終了",
    "case": "ケース番号",
    "category": "区分",
    "case_type": "相談種別",
    "member": "メンバー",
    "decision": "方針",
    "next_review": "次回検討",
    "plan": "プラン",
    "version": "版",
    "wishes": "意向",
    "issues": "課題",
    "supports": "支援の種類及び内容",
    "review_due": "見直し時期",
    "recipients": "提供先",
    "signed_by": "署名",
    "valid_until": "有効期限",
    "school": "学校",
    "student_no": "児童生徒番号",
    "from_month": "開始月",
    "org": "機関",
    "local_number": "番号",
    "severity": "重症度",
    "meeting": "会議",
    "grade": "学年",
    "student": "児童生徒",
}
CASE_TYPES_JA = CASE_TYPE_JA | {  # 相談種別 the demo and centres use that the ledger's table does not name
    "pregnancy_support": "妊娠期からの支援（特定妊婦）",
    "childcare_difficulty": "育児困難",
    "young_carer": "ヤングケアラー",
}
CODES_JA: dict[str, dict[str, str]] = {"category": CATEGORY_JA, "case_type": CASE_TYPES_JA, "reason": ALERT_JA}
MORE_KINDS_JA = {  # kinds the ledger's vocabulary does not name
    "target_list.assigned": "対象名簿への登録",
    "target_list.removed": "対象名簿からの削除",
    "identity.linked": "番号の紐付け",
    "identity.unlinked": "紐付けの解除",
    "emergency.declared": "緊急時アクセスの宣言",
    "child.erased": "記録の消去",
}


def kind_ja(kind: str) -> str:
    return KIND_JA.get(kind) or MORE_KINDS_JA.get(kind, kind)


def role_ja(role: str) -> str:
    return ROLE_JA.get(role, role)


def rule_explained(rule: str) -> str:
    return RULE_JA.get(rule, (rule, ""))[1]


def value_text(name: str, value: Any, org_name: Any) -> str:
    """A payload value as text for people: codes by their Japanese names, organisations by name, lists joined."""
    if isinstance(value, list):
        return "、".join(value_text(name, v, org_name) for v in value)
    if isinstance(value, dict):
        return "、".join(f"{FIELD_JA.get(k, k)}: {value_text(k, v, org_name)}" for k, v in value.items())
    if name in CODES_JA:
        return CODES_JA[name].get(str(value), str(value))
    if name in ("member", "to", "org", "school", "recipients"):
        return str(org_name(str(value)))
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    return str(value)


WEEKDAYS = "月火水木金土日"


def wareki(moment: Any) -> str:
    """A date (or the date of an ISO time, in Japan) in 和暦 with 西暦: 令和8年5月12日(火) / 2026-05-12."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment) if "T" in moment else date.fromisoformat(moment[:10])
    if isinstance(moment, datetime):
        moment = moment.astimezone(JST).date() if moment.tzinfo else moment.date()
    era = f"令和{moment.year - 2018}年" if moment >= date(2019, 5, 1) else f"平成{moment.year - 1988}年"
    era = era.replace("令和1年", "令和元年")
    return f"{era}{moment.month}月{moment.day}日({WEEKDAYS[moment.weekday()]}) / {moment.isoformat()}"


def time_of_day(moment: str) -> str:
    """The time of an ISO time in Japan, HH:MM."""
    return datetime.fromisoformat(moment).astimezone(JST).strftime("%H:%M")
