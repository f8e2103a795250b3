"""The event vocabulary's Japanese names: what the pages, the CLI and the exports print for a code.

One table per vocabulary, keyed by the code the events and the registry carry: kinds of event (``KIND_JA``), the
要対協 categories and 相談種別 of a case (``CATEGORY_JA``, ``CASE_TYPE_JA``), a case's state (``STATUS_JA``), the
reasons of an absence alert (``ALERT_JA``), organisation types (``ORG_TYPE_JA``), the roles people act in
(``ROLE_JA``), the purposes of a read (``PURPOSE_JA``), the rules of the read policy with the law behind each, in
the words families read (``RULE_JA``), and reviewers' findings on an emergency access (``FINDING_JA``).
``label`` looks a code up and prints an unknown code as it is. No I/O, no imports: every layer may use it.
"""

from __future__ import annotations

from collections.abc import Mapping

KIND_JA = {
    "child.registered": "児童登録",
    "residence.changed": "転居",
    "enrollment.started": "在籍開始",
    "enrollment.ended": "在籍終了",
    "concern.reported": "気づき",
    "notification.filed": "通告",
    "attendance.monthly": "月次出欠",
    "attendance.daily": "日次出欠",
    "absence.alert": "欠席等の警告",
    "health.checkup": "健診",
    "service.usage": "サービス利用",
    "visit.report": "訪問記録",
    "note.recorded": "記録",
    "case.registered": "ケース登録",
    "case.member_assigned": "メンバー追加",
    "case.member_removed": "メンバー解除",
    "case.shared": "ケース共有",
    "case.reviewed": "進行管理（検討）",
    "case.type_changed": "相談種別の変更",
    "case.closed": "終結",
    "case.transferred": "ケース移管",
    "case.transfer_acknowledged": "移管の受理",
    "ledger.updated": "共同管理台帳の更新",
    "protection.started": "一時保護開始",
    "protection.ended": "一時保護解除",
    "plan.created": "サポートプラン作成",
    "plan.revised": "サポートプラン改訂",
    "consent.granted": "プラン共有の同意",
    "consent.withdrawn": "同意の撤回",
    "consent.refused": "同意しない",
    "emergency.declared": "緊急時アクセス宣言",
    "target_list.assigned": "対象名簿への登録",
    "target_list.removed": "対象名簿からの削除",
    "identity.linked": "番号の紐付け",
    "identity.unlinked": "紐付けの解除",
    "child.erased": "記録の消去",
    # 事前照会 (meetings-and-services.md §1)
    "inquiry.sent": "事前照会",
    "inquiry.answered": "事前照会への回答",
    # family-support services (家庭支援事業)
    "service.recommended": "利用勧奨",
    "service.recommendation_result": "利用勧奨の結果",
    "service.ordered": "措置",
    "service.referred": "事業者への依頼",
    "service.monitoring": "モニタリング",
    "service.ended": "サービス終了",
    "report.acknowledged": "報告の確認",
    # Households (世帯, meetings-and-services.md §3)
    "household.joined": "世帯への登録",
    "household.left": "世帯からの削除",
}

# Family-support services (家庭支援事業, meetings-and-services.md §2)
SERVICE_JA = {  # the six services of 2024, by code; a service not listed is printed as written
    "home_visit_support": "子育て世帯訪問支援事業",
    "child_centre": "児童育成支援拠点事業",
    "short_stay": "子育て短期支援事業（ショートステイ）",
    "temporary_care": "一時預かり事業",
    "parent_child": "親子関係形成支援事業",
    "nurturing_visit": "養育支援訪問事業",
}
RECOMMENDATION_FORM_JA = {"oral": "口頭", "written": "文書"}
RECOMMENDATION_RESULT_JA = {"accepted": "利用する", "declined": "利用しない", "no_answer": "回答なし"}
MONITORING_JA = {"continue": "継続", "extend": "延長", "change": "変更", "end": "終了"}

CATEGORY_JA = {"youhogo": "要保護児童", "youshien": "要支援児童", "tokutei_ninpu": "特定妊婦"}  # 要対協の区分

CASE_TYPE_JA = {  # 相談種別
    "abuse_physical": "虐待（身体的）",
    "abuse_psychological": "虐待（心理的）",
    "abuse_sexual": "虐待（性的）",
    "abuse_neglect": "虐待（ネグレクト）",
    "neglect": "養育不適切（ネグレクト傾向）",
    "yougo_other": "その他の養護相談",
    "health": "保健相談",
    "disability": "障害相談",
    "delinquency": "非行相談",
    "upbringing": "育成相談",
    "pregnancy_support": "妊娠期からの支援（特定妊婦）",
    "childcare_difficulty": "育児困難",
    "young_carer": "ヤングケアラー",
}

STATUS_JA = {"open": "対応中", "closed": "終結", "transferred": "移管"}  # a case's state on a ledger

# The reasons of an ``absence.alert``; the number of days is printed beside them, so the names carry no threshold.
ALERT_JA = {"consecutive_absence": "連続欠席", "no_contact": "連絡なし欠席", "injury": "外傷等"}

ORG_TYPE_JA = {  # events.model.ORG_TYPES
    "municipal_center": "こども家庭センター",
    "municipal_department": "市町村の部署",
    "child_guidance_center": "児童相談所",
    "prefecture_office": "都道府県",
    "school": "学校",
    "nursery": "保育所等",
    "health_center": "保健所",
    "medical": "医療機関",
    "service_provider": "委託事業者",
    "auditor": "監査担当",
}

ORG_FIELD_JA = {  # services.administration.organisations.OrgSpec: the fields of an organisations file
    "id": "機関ID",
    "type": "種類",
    "name": "名称",
    "municipality": "市町村コード",
    "prefecture": "都道府県コード",
    "covers": "管轄する市町村",
    "regime": "公立・私立",
    "code": "学校コード",
}

ROLE_JA = {  # services.auth.tokens.ROLES
    "caseworker": "児童福祉の担当職員",
    "health_nurse": "保健師",
    "supervisor": "統括支援員",
    "teacher": "教員",
    "school_admin": "学校の管理職",
    "nursery_staff": "保育士等",
    "provider_staff": "事業者の職員",
    "clerk": "事務職員",
    "auditor": "監査担当",
    "hub_admin": "ハブの管理者",
    "adapter": "連携システム",
}

# The views of many children (services.reading.view_log), for auditors; and the one line a family's disclosure
# report gives a view that consulted the child without showing it (no view named: families never see 要対協).
VIEW_JA = {
    "ledger": "進行管理台帳",
    "joint-ledger": "共同管理台帳",
    "ledger-csv": "進行管理台帳のCSV出力",
    "joint-ledger-csv": "共同管理台帳のCSV出力",
    "agenda": "会議の検討予定一覧",
    "start-page": "トップページの件数",
    "overdue": "月例報告の未提出一覧",
}
CONSULTED_JA = "一覧の件数に含まれた"
CONSULTED_FAMILY_JA = "機関の一覧の件数・絞り込みに含まれました（記録の内容は表示されていません）"

PURPOSE_JA = {
    "support": "支援のため",
    "meeting": "関係機関の会議のため",
    "emergency": "緊急対応のため",
    "audit": "監査のため",
    "statistics": "統計のため",
}

# The grounds of the read policy in plain Japanese, for families (policy.md, "The rules"; consent/policy.py), as
# (name, law), in the policy's order. Families never see the word 要対協 (domain.md): rule CASE is described by
# what it is.
RULE_JA: dict[str, tuple[str, str]] = {
    "OWN": ("自機関の記録", "記録を作成した機関が、その業務の範囲内で利用（個人情報保護法 第61条・第18条）"),
    "DIRECT": (
        "法令に基づく直接の提供先",
        "法令に基づき情報の提供を受けた機関（児童福祉法 第21条の10の5・第25条・第25条の3、児童虐待防止法 "
        "第6条、委託契約に基づく報告）",
    ),
    "CASE": (
        "地域の関係機関による支援のための情報共有",
        "市町村が調整する関係機関の協議の場で、支援を担当する機関と共有（児童福祉法 第25条の2、守秘義務は"
        "同法 第25条の5）",
    ),
    "LEDGER": ("児童相談所との共同管理台帳", "市町村と児童相談所が共同で管理する記録（共同管理台帳）"),
    "CONSENT": (
        "保護者の同意",
        "保護者が同意した支援計画（サポートプラン）の共有（児童福祉法 第10条第4項、"
        "個人情報保護法 第27条第1項・第69条第2項第1号）",
    ),
    "TRANSFER": ("転居に伴うケース移管", "転居先の市町村への支援の引継ぎ"),
    "EMERGENCY": (
        "緊急時の例外",
        "お子さまの生命・身体を守るため緊急に必要な場合（個人情報保護法 第27条第1項第2号・第69条第2項第4号）",
    ),
}

SETTING_JA = {  # consent.model.Settings (policy.md, "Settings")
    "integrated_center": "こども家庭センターの一体的運営（児童福祉・母子保健）",
    "joint_ledger": "児童相談所との共同管理台帳",
    "emergency_hours": "緊急時の閲覧を認める時間（時間）",
    "monthly_report_due_day": "月次報告の提出期限（毎月の日）",
}

RELATION_JA = {  # 世帯での続柄 (household.joined's ``relation``); any other word is printed as it is
    "sibling": "きょうだい",
    "mother": "母",
    "father": "父",
    "newborn": "新生児（特定妊婦の子）",
    "child": "子",
    "grandparent": "祖父母",
    "other": "その他",
}

FINDING_JA = {"justified": "正当", "not_justified": "正当でない", "needs_follow_up": "要フォローアップ"}

RULE_BADGE_JA = {  # ui.md: the rule an entry is read under, as the short badge on a child's page
    "OWN": "自機関の記録",
    "DIRECT": "直接の提供",
    "CASE": "ケース共有",
    "LEDGER": "共同管理台帳",
    "CONSENT": "同意",
    "TRANSFER": "移管",
    "EMERGENCY": "緊急時",
}

BASIS_JA = {  # policy.md, "Direct audience, by basis"
    "internal": "自機関の記録",
    "cwa-21-10-5": "児童福祉法第21条の10の5（情報提供）",
    "cwa-25": "児童福祉法第25条（通告）",
    "cwa-25-3": "児童福祉法第25条の3（要請による提供）",
    "cwa-25-2": "児童福祉法第25条の2（関係機関での共有）",
    "joint-ledger": "共同管理台帳",
    "commissioned": "委託",
}

FIELD_JA = {  # payload fields (policy.md, "Kinds"; school-reports.md)
    "summary": "内容",
    "signs": "気づいた様子",
    "text": "記録",
    "observations": "様子",
    "reason": "理由",
    "residence": "居住市町村（コード）",
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
    "status": "状況",
    "days": "日数",
    "since": "開始日",
    "checkup": "健診",
    "findings": "所見",
    "service": "サービス",
    "from": "開始",
    "to": "宛先",
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
    "proposal": "会議前の提案",
    "meeting_date": "会議の日付",
    "grade": "学年",
    "note": "備考",
    "consent": "同意",
    "urgent": "緊急",
    "urgent_reason": "緊急の理由",
    # 事前照会 (meetings-and-services.md §1)
    "inquiry": "照会",
    "due": "回答期限",
    "questions": "照会事項",
    "no_change": "変わりなし",
    "attendance": "出欠",
    "actions": "対応したこと",
    "concerns": "心配なこと",
    "safety_scale": "安全の尺度（0〜10）",
    "checklist": "在宅支援アセスメントのチェック項目",
    "recommendation": "勧奨・推奨",
    "form": "方法",
    "result": "結果",
    "order": "措置番号",
    "notice_date": "通知日",
    "referral": "依頼番号",
    "start": "開始日",
    "frequency": "頻度",
    "report": "報告",
    "handled_by": "対応者",
    # Households (世帯)
    "household": "世帯",
    "relation": "続柄",
    "continues": "引き継いだケース",  # a newborn's case continuing the 特定妊婦 case (services.demo)
}

# 在宅支援アセスメント: the items a member may tick in an answer to a status inquiry (inquiry.answered checklist)
CHECKLIST_JA = {
    "injury": "けが・あざ",
    "hygiene": "衣服・身体の清潔",
    "meals": "食事（空腹・給食の食べ方）",
    "attendance": "登校・登園の不安定",
    "mood": "表情・情緒の変化",
    "fear_of_home": "帰宅を嫌がる",
    "parent_contact": "保護者と連絡が取れない",
    "parent_stress": "保護者の疲れ・不調",
}


def label(table: Mapping[str, str], code: str | None) -> str:
    """The Japanese name of ``code`` in ``table``; a code the table does not know, as it is ("" for none)."""
    return table.get(code or "", code or "")


MEASURE_JA = {  # services.projections.municipal_counts.MEASURES: the planners' aggregates (集計, aggregates.md)
    "cases.registered": "要対協ケースの新規登録",
    "cases.closed": "要対協ケースの終結",
    "cases.transferred_out": "ケースの移管（転出）",
    "cases.transferred_in": "ケースの移管（転入）",
    "cases.open": "月末の対応中ケース",
    "reviews.cases": "検討したケース",
    "reviews.overdue": "月末に検討期限を過ぎたケース",
    "reviews.intervals": "検討の間隔（件数）",
    "reviews.median_days": "検討の間隔の中央値（日）",
    "plans.created": "サポートプランの作成",
    "plans.revised": "サポートプランの見直し",
    "consents.granted": "サポートプランへの同意",
    "consents.refused": "サポートプランへの不同意",
    "consents.withdrawn": "同意の撤回",
    "plans.review_due": "作成から91日を迎えたサポートプラン",
    "plans.reviewed_in_91_days": "うち91日以内に見直したサポートプラン",
    "reports.listed": "月末の対象名簿の児童",
    "reports.received": "受け取った月次報告",
    "reports.expected": "提出を求める月次報告",
    "reports.on_time": "期限までに届いた月次報告",
    "reports.late": "期限後に届いた月次報告",
    "reports.missing": "月末に未提出の月次報告",
    "alerts": "欠席等の警告",
    "concerns": "気づき・通告（21条の10の5）",
    "notifications": "通告（25条）",
    "transfers.sent": "送ったケース移管",
    "transfers.acknowledged_in_14_days": "14日以内に受理された移管",
    "transfers.not_acknowledged": "月末に受理されていない移管",
    "emergencies.declared": "緊急時アクセスの宣言",
    "services.referrals": "家庭支援事業の利用勧奨・措置",
    "services.monitoring": "家庭支援事業のモニタリング",
    "services.usage": "家庭支援事業の利用報告",
    "services.visits": "訪問の報告",
    "inquiries.sent": "送った事前照会",
    "inquiries.answered_on_time": "期限内に回答された事前照会",
}
