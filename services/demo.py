"""A believable municipality to try the hub on: 別府市 and 大分市 (大分県), April to November 2026, in a prefecture
with six more municipalities whose background cases feed the planners' aggregates (``background_events``).

Everything here is fictional (names, numbers, schools), but shaped like real work: concerns (気づき) from
schools, nurseries and clinics, a 通告, monthly attendance reports for the 要対協's list, 要対協 cases, the
joint ledger (共同管理台帳) with the 児童相談所, support plans and the family's consent, a family moving to the
next city, and one night-time emergency.

The demo goes through the hub's real paths only: ``Hub.load_orgs`` and ``Hub.publish``, with the same
validation and admission as any adapter. Event ids are fixed, so loading it again changes nothing.
The demo is an 大分-style deployment: it needs the setting ``joint_ledger`` on, and ``tsunagu demo`` records it in
the store (``record_demo_settings``), so that every process on the store reads it so, from any shell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.administration.organisations import OrgLoadResult
from services.administration.regions import load_regions, read_regions_file
from services.hub import Hub
from services.publishing.ingest import PublishResult

BEPPU, OITA = "442020", "442011"  # 全国地方公共団体コード

# --- Organisations ------------------------------------------------------------------------------------------

ORGS: list[dict[str, Any]] = [
    {
        "id": "beppu-center",
        "type": "municipal_center",
        "name": "別府市こども家庭センター",
        "municipality": BEPPU,
        "prefecture": "44",
        "regime": "public",
    },
    {
        "id": "oita-center",
        "type": "municipal_center",
        "name": "大分市こども家庭センター",
        "municipality": OITA,
        "prefecture": "44",
        "regime": "public",
    },
    {
        "id": "beppu-boe",
        "type": "municipal_department",
        "name": "別府市教育委員会 学校教育課",
        "municipality": BEPPU,
        "regime": "public",
    },
    {
        "id": "beppu-es-hamakaze",
        "type": "school",
        "name": "別府市立はまかぜ小学校",
        "municipality": BEPPU,
        "regime": "public",
        "code": "B144220200013",
    },
    {
        "id": "beppu-es-yamanami",
        "type": "school",
        "name": "別府市立やまなみ小学校",
        "municipality": BEPPU,
        "regime": "public",
        "code": "B144220200021",
    },
    {
        "id": "beppu-jhs-tsurumidai",
        "type": "school",
        "name": "別府市立鶴見台中学校",
        "municipality": BEPPU,
        "regime": "public",
        "code": "C144220200019",
    },
    {
        "id": "oita-es-wakaba",
        "type": "school",
        "name": "大分市立わかば小学校",
        "municipality": OITA,
        "regime": "public",
        "code": "B144220100015",
    },
    {
        "id": "beppu-hoikusho-kitahama",
        "type": "nursery",
        "name": "別府市立北浜保育所",
        "municipality": BEPPU,
        "regime": "public",
    },
    {
        "id": "sakura-kodomoen",
        "type": "nursery",
        "name": "認定こども園さくら",
        "municipality": BEPPU,
        "regime": "private",
    },
    {"id": "himawari-hoikuen", "type": "nursery", "name": "ひまわり保育園", "municipality": BEPPU, "regime": "private"},
    {
        "id": "beppu-kodomo-clinic",
        "type": "medical",
        "name": "べっぷこどもクリニック",
        "municipality": BEPPU,
        "regime": "private",
    },
    {
        "id": "yufu-ladies-clinic",
        "type": "medical",
        "name": "ゆふレディースクリニック（産婦人科）",
        "municipality": BEPPU,
        "regime": "private",
    },
    {
        "id": "kosodate-net",
        "type": "service_provider",
        "name": "NPO法人べっぷ子育てネット（委託事業者）",
        "municipality": BEPPU,
        "regime": "private",
    },
    {"id": "tobu-hc", "type": "health_center", "name": "大分県東部保健所", "prefecture": "44", "regime": "public"},
    {
        "id": "chuo-jiso",
        "type": "child_guidance_center",
        "name": "大分県中央児童相談所",
        "prefecture": "44",
        "covers": [OITA, BEPPU],
        "regime": "public",
    },
    {
        "id": "beppu-audit",
        "type": "auditor",
        "name": "別府市 個人情報保護・監査担当",
        "municipality": BEPPU,
        "regime": "public",
    },
]

# --- The prefecture (大分県) around them, for the planners' aggregates (集計, aggregates.md) --------------------
#
# Six more municipalities with their centres, a prefecture office, and the prefecture's 圏域 (``REGIONS``, what
# ``tsunagu regions load`` reads). Their cases are background: each a child with a registration and a case,
# some reviewed and closed, never opened in the demo's stories and not among ``demo_children`` (the stories a
# person reads); they are there so that the prefecture's tables have counts of 5 and more beside small ones.

PREFECTURE_CENTRES: list[tuple[str, str, str, int]] = [  # id, municipality code, name, background cases
    ("nakatsu-center", "442038", "中津市", 40),
    ("saiki-center", "442054", "佐伯市", 24),
    ("usuki-center", "442062", "臼杵市", 9),
    ("kitsuki-center", "442101", "杵築市", 6),
    ("yufu-center", "442135", "由布市", 8),
    ("hiji-center", "443417", "日出町", 3),
]
PREFECTURE_OFFICE = "oita-pref"
ORGS += [
    {
        "id": centre,
        "type": "municipal_center",
        "name": f"{name}こども家庭センター",
        "municipality": code,
        "prefecture": "44",
        "regime": "public",
    }
    for centre, code, name, _ in PREFECTURE_CENTRES
] + [
    {
        "id": PREFECTURE_OFFICE,
        "type": "prefecture_office",
        "name": "大分県 福祉保健部 こども・家庭支援課",
        "prefecture": "44",
        "regime": "public",
    }
]
REGIONS_FILE = Path(__file__).with_name("demo_regions.yaml")
"""The demo prefecture's 圏域 (those of the demo's municipalities), as ``tsunagu regions load`` reads them."""


BACKGROUND_TYPES = ("abuse_neglect", "abuse_psychological", "childcare_difficulty", "upbringing", "health")


def background_events() -> list[dict[str, Any]]:
    """The prefecture's background cases (fixed ids ``demo-bg-<centre>-NN-N``), spread from April to November
    2026: the n-th case of a centre registered in month 4 + (n * 5 + centre) % 8, every third reviewed the
    month after, every fourth closed two months after (within November)."""
    events: list[dict[str, Any]] = []
    for c, (centre, code, _, count) in enumerate(PREFECTURE_CENTRES):
        for n in range(count):
            child = f"bg-{centre.removesuffix('-center')}-{n + 1:02d}"
            month = 4 + (n * 5 + c) % 8
            day = 1 + (n * 7) % 20
            case = f"K-{code}-{n + 1:03d}"
            steps: list[tuple[str, str, dict[str, Any]]] = [
                ("child.registered", f"2026-{month:02d}-{day:02d} 09:00", {"residence": code}),
                (
                    "case.registered",
                    f"2026-{month:02d}-{day:02d} 10:00",
                    {
                        "case": case,
                        "category": "youshien" if n % 3 else "youhogo",
                        "case_type": BACKGROUND_TYPES[n % len(BACKGROUND_TYPES)],
                    },
                ),
            ]
            if n % 3 == 0 and month < 11:
                steps.append(
                    ("case.reviewed", f"2026-{month + 1:02d}-{day:02d} 14:00", {"case": case, "decision": "支援を継続"})
                )
            if n % 4 == 1 and month < 10:
                steps.append(
                    ("case.closed", f"2026-{month + 2:02d}-{day:02d} 15:00", {"case": case, "reason": "改善により終結"})
                )
            for i, (kind, at, payload) in enumerate(steps, start=1):
                events.append(
                    {
                        "id": f"demo-{child}-{i}",
                        "kind": kind,
                        "child": child,
                        "source": centre,
                        "basis": "internal",
                        "at": jst(at),
                        "payload": payload,
                    }
                )
    return sorted(events, key=lambda e: (e["at"], e["id"]))


CENTER, JISO = "beppu-center", "chuo-jiso"
MH = "maternal_health"  # the centre's 母子保健 function (its default is 児童福祉, child_welfare)


def jst(text: str) -> str:
    """'2026-05-08 16:10' as an ISO 8601 time in Japan."""
    day, _, time = text.partition(" ")
    return f"{day}T{time or '09:00'}:00+09:00"


class Story:
    """One child's events, in the order they happened; ids are fixed (``demo-<child>-NNN``)."""

    def __init__(self, child: str):
        self.child = child
        self.events: list[dict[str, Any]] = []

    def add(
        self,
        kind: str,
        source: str,
        at: str,
        payload: dict[str, Any],
        *,
        basis: str = "internal",
        to: str | None = None,
        function: str | None = None,
        sensitive: list[str] | None = None,
    ) -> str:
        event_id = f"demo-{self.child}-{len(self.events) + 1:03d}"
        envelope: dict[str, Any] = {
            "id": event_id,
            "kind": kind,
            "child": self.child,
            "source": source,
            "basis": basis,
            "at": jst(at),
            "payload": payload,
        }
        if to:
            envelope["to"] = to
        if function:
            envelope["function"] = function
        if sensitive:
            envelope["sensitive"] = sensitive
        self.events.append(envelope)
        return event_id

    # Shorthands for what recurs
    def registered(
        self, at: str, birth_date: str | None, name_kana: str, *, function: str | None = None, residence: str = BEPPU
    ) -> str:
        payload = {"residence": residence, "name_kana": name_kana}
        if birth_date:
            payload["birth_date"] = birth_date
        return self.add("child.registered", CENTER, at, payload, function=function)

    def enrolled(self, org: str, at: str, student_no: str, grade: str) -> str:
        return self.add("enrollment.started", org, at, {"org": org, "student_no": student_no, "grade": grade})

    def concern(self, org: str, at: str, summary: str, signs: list[str] | None = None) -> str:
        payload: dict[str, Any] = {"summary": summary}
        if signs:
            payload["signs"] = signs
        return self.add("concern.reported", org, at, payload, basis="cwa-21-10-5")

    def listed(self, school: str, at: str, student_no: str, from_month: str) -> str:
        return self.add(
            "target_list.assigned",
            CENTER,
            at,
            {"school": school, "student_no": student_no, "from_month": from_month},
            basis="cwa-25-3",
            to=school,
        )

    def monthly(
        self, school: str, at: str, month: str, days: int, attended: int, absent: int, no_contact: int, **more: Any
    ) -> str:
        payload = {
            "month": month,
            "school_days": days,
            "attended": attended,
            "absent": absent,
            "absent_without_contact": no_contact,
            **more,
        }
        return self.add("attendance.monthly", school, at, payload, basis="cwa-25-3", to=CENTER)

    def case(
        self,
        kind: str,
        at: str,
        case: str,
        *,
        source: str = CENTER,
        basis: str = "internal",
        function: str | None = None,
        **payload: Any,
    ) -> str:
        return self.add(kind, source, at, {"case": case, **payload}, basis=basis, function=function)


def _child_01() -> Story:
    """小4, ネグレクト → 要保護児童 (abuse_neglect), on the joint ledger; monthly reports and a 7-day alert."""
    s, k, school = Story("child-01"), "K-2026-014", "beppu-es-hamakaze"
    s.registered("2026-04-01 09:00", "2016-09-14", "ヤマモト ハルト")
    s.enrolled(school, "2026-04-06 08:30", "2026-0412", "小学4年")
    s.concern(
        school,
        "2026-05-08 16:10",
        "連休明けから同じ服で登校する日が続き、給食を何度もおかわりする。「夜ごはんがなかった」と話した。",
        ["衣服の汚れ", "空腹の訴え"],
    )
    s.case("case.registered", "2026-05-11 10:00", k, category="youhogo", case_type="abuse_neglect")
    s.case("case.member_assigned", "2026-05-11 10:05", k, member=school)
    s.case("case.member_assigned", "2026-05-11 10:06", k, member="beppu-boe")
    s.listed(school, "2026-05-11 10:30", "2026-0412", "2026-05")
    s.case(
        "case.shared",
        "2026-05-13 15:00",
        k,
        basis="cwa-25-2",
        summary="ネグレクトの疑いで要保護児童として登録しました。登校状況・身なり・給食の様子の見守りと、"
        "毎月の出欠状況の報告をお願いします。欠席が続くときは当日中にセンターへ連絡してください。",
    )
    s.add(
        "visit.report",
        CENTER,
        "2026-05-20 18:30",
        {
            "date": "2026-05-20",
            "observations": "家庭訪問。母は夜勤が続き、本人と弟（3歳）だけで夜を過ごす日がある。"
            "冷蔵庫にほとんど食品がない。母は支援を受けることに同意。",
        },
    )
    s.case(
        "ledger.updated",
        "2026-05-27 10:00",
        k,
        source=JISO,
        basis="joint-ledger",
        severity="中度",
        status="在宅支援",
        note="5月実務者会議で共同管理台帳に登載",
    )
    s.monthly(
        school,
        "2026-06-05 16:00",
        "2026-05",
        19,
        15,
        4,
        2,
        late=3,
        reasons=["体調不良", "連絡なし"],
        notes="朝食をとらずに登校する日が多い",
    )
    s.case(
        "case.reviewed",
        "2026-06-15 14:00",
        k,
        decision="在宅支援を継続。センターの家庭訪問を月2回、学校での見守りを継続。",
        next_review="2026-09-14",
    )
    s.monthly(school, "2026-07-06 16:00", "2026-06", 22, 18, 4, 3, reasons=["連絡なし"])
    s.monthly(school, "2026-08-05 16:00", "2026-07", 14, 12, 2, 1)
    s.monthly(school, "2026-09-04 16:00", "2026-08", 4, 4, 0, 0)
    s.add(
        "absence.alert",
        school,
        "2026-09-17 08:50",
        {"reason": "consecutive_absence", "days": 7, "since": "2026-09-08"},
        basis="cwa-25-3",
        to=CENTER,
    )
    s.add(
        "visit.report",
        CENTER,
        "2026-09-17 17:00",
        {
            "date": "2026-09-17",
            "observations": "同日家庭訪問。本人は在宅、発熱なし。母は「行きたがらない」と説明。"
            "室内にごみが散乱している。",
        },
    )
    s.case(
        "ledger.updated",
        "2026-09-18 11:00",
        k,
        source=JISO,
        basis="joint-ledger",
        severity="重度",
        status="在宅支援（重点見守り）",
    )
    s.case(
        "case.reviewed",
        "2026-09-18 16:00",
        k,
        decision="児相と協議し重点見守りとする。学校は毎朝の登校確認、欠席時は当日中にセンターへ連絡。",
        next_review="2026-10-16",
    )
    s.monthly(
        school,
        "2026-10-05 16:00",
        "2026-09",
        20,
        11,
        9,
        7,
        reasons=["連絡なし", "体調不良"],
        notes="9月8日から16日まで連続欠席。18日から登校再開。",
    )
    s.case(
        "case.reviewed",
        "2026-10-16 14:00",
        k,
        decision="9月後半から登校が再開。母が就労時間を調整した。重点見守りを継続。",
        next_review="2026-12-11",
    )
    s.monthly(school, "2026-11-05 16:00", "2026-10", 21, 19, 2, 0, notes="表情が明るくなった")
    return s


def _child_02() -> Story:
    """年中, 認定こども園: a support plan shared with the nursery and the provider under consent (v1); v2 not yet."""
    s, plan, nursery = Story("child-02"), "P-2026-031", "sakura-kodomoen"
    s.registered("2026-04-01 09:00", "2021-06-02", "サトウ ユイ")
    s.enrolled(nursery, "2026-04-01 08:00", "S-21-017", "年中（4歳児クラス）")
    s.concern(
        nursery,
        "2026-04-20 17:30",
        "母が迎えの際に涙ぐみ「もう限界」と話す。本人に目立った外傷はない。",
        ["保護者の疲弊"],
    )
    s.add(
        "note.recorded",
        CENTER,
        "2026-04-24 11:00",
        {"text": "保健師が電話。母はひとり親で、双子の弟（1歳）の育児もあり睡眠不足が続く。支援の利用を希望。"},
        function=MH,
    )
    s.add(
        "plan.created",
        CENTER,
        "2026-05-07 10:00",
        {
            "plan": plan,
            "version": 1,
            "wishes": ["夜に眠れるようになりたい", "仕事を続けたい"],
            "issues": ["母の睡眠不足と育児負担", "双子の育児による家事の停滞"],
            "supports": ["子育て世帯訪問支援事業（週1回、家事・育児支援）", "一時預かり（月2回まで）"],
            "review_due": "2026-08-07",
            "disclosures": "疲れると子どもに強くあたってしまうことがあると話した。",
        },
        sensitive=["disclosures"],
    )
    s.add(
        "consent.granted",
        CENTER,
        "2026-05-07 10:30",
        {
            "plan": plan,
            "version": 1,
            "recipients": [nursery, "kosodate-net"],
            "signed_by": "母",
            "valid_until": "2027-03-31",
        },
    )
    s.add(
        "service.usage",
        "kosodate-net",
        "2026-05-15 10:00",
        {"service": "子育て世帯訪問支援事業", "from": "2026-05-15"},
        basis="commissioned",
        to=CENTER,
    )
    s.add(
        "visit.report",
        "kosodate-net",
        "2026-06-12 15:00",
        {"date": "2026-06-12", "observations": "訪問4回目。母と一緒に夕食の作り置き。本人は落ち着いて遊べている。"},
        basis="commissioned",
        to=CENTER,
    )
    s.add(
        "plan.revised",
        CENTER,
        "2026-08-07 10:00",
        {
            "plan": plan,
            "version": 2,
            "wishes": ["短い期間でも休息をとりたい"],
            "issues": ["母の疲労の蓄積", "夏休み中の双子の育児"],
            "supports": ["子育て世帯訪問支援事業（週1回）", "子育て短期支援事業（ショートステイ、月1回程度）"],
            "review_due": "2026-11-06",
        },
    )
    s.add(
        "visit.report",
        "kosodate-net",
        "2026-09-10 15:00",
        {"date": "2026-09-10", "observations": "母の表情が明るくなった。ショートステイの利用はまだ迷っている。"},
        basis="commissioned",
        to=CENTER,
    )
    s.add(
        "note.recorded",
        CENTER,
        "2026-11-06 16:00",
        {"text": "プラン見直し面談。第2版の関係機関との共有にはまだ同意を得ていない。次回面談で改めて説明する。"},
    )
    return s


def _child_03() -> Story:
    """中2: a 通告 from the school, physical abuse on the joint ledger, and a night-time emergency."""
    s, k, school = Story("child-03"), "K-2026-031", "beppu-jhs-tsurumidai"
    s.registered("2026-04-01 09:00", "2012-11-30", "タナカ ソウタ")
    s.enrolled(school, "2026-04-07 08:30", "2025-0233", "中学2年")
    s.add(
        "notification.filed",
        school,
        "2026-10-20 09:40",
        {"summary": "左頬と右上腕にあざ。本人は「父に叩かれた。家に帰りたくない」と話している。"},
        basis="cwa-25",
        to=CENTER,
    )
    s.case("case.registered", "2026-10-20 14:00", k, category="youhogo", case_type="abuse_physical")
    s.case(
        "ledger.updated",
        "2026-10-20 15:00",
        k,
        basis="joint-ledger",
        severity="中度",
        status="通告受理・安全確認済",
        summary="学校から通告（左頬・右上腕のあざ、父からの叩きの訴え）。同日、学校で本人と面接し安全を確認。",
    )
    s.case("case.member_assigned", "2026-10-21 09:00", k, member=school)
    s.case(
        "case.shared",
        "2026-10-21 09:30",
        k,
        basis="cwa-25-2",
        summary="身体的虐待の疑いで要保護児童として登録しました。登下校時の様子と新たな外傷の有無を確認し、"
        "気づいたことは当日中にセンターへ連絡してください。",
    )
    s.listed(school, "2026-10-21 10:00", "2025-0233", "2026-10")
    s.case(
        "ledger.updated",
        "2026-10-23 10:00",
        k,
        source=JISO,
        basis="joint-ledger",
        severity="中度",
        status="在宅支援（児相・市で父と面接予定）",
    )
    s.monthly(school, "2026-11-05 16:00", "2026-10", 21, 19, 2, 0, notes="10月20日以降、保健室で過ごす時間が増えた")
    s.case(
        "case.reviewed",
        "2026-11-16 15:00",
        k,
        decision="父と面接。体罰をしないと約束。見守りを継続し、再発時は一時保護を検討。",
        next_review="2026-12-11",
    )
    s.add(
        "emergency.declared",
        JISO,
        "2026-11-22 22:40",
        {
            "reason": "警察から身柄付き通告。夜間に自宅から裸足で逃げ出したところを保護。顔面に新たな傷。"
            "保護者と連絡がとれず、同意を得られない。"
        },
    )
    s.case("protection.started", "2026-11-23 01:30", k, source=JISO, basis="joint-ledger")
    s.case(
        "ledger.updated", "2026-11-23 01:35", k, source=JISO, basis="joint-ledger", severity="重度", status="一時保護中"
    )
    return s


def _child_04() -> Story:
    """特定妊婦: the centre's 母子保健 side, a clinic's concern, a 要対協 case with the clinic and the 保健所."""
    s, k, clinic = Story("child-04"), "K-2026-022", "yufu-ladies-clinic"
    s.registered("2026-06-02 10:00", None, "ナカムラ（妊娠届出）", function=MH)
    s.add(
        "health.checkup",
        CENTER,
        "2026-06-02 10:30",
        {
            "checkup": "妊娠届出時面談",
            "date": "2026-06-02",
            "findings": ["妊娠20週での届出", "パートナーとは別居", "経済的な困窮の訴え"],
        },
        function=MH,
    )
    s.concern(
        clinic,
        "2026-07-14 18:00",
        "妊婦健診の受診が6月以降途切れている。前回受診時に「産んでも育てられるか不安」と話した。",
    )
    s.case(
        "case.registered", "2026-07-16 09:30", k, function=MH, category="tokutei_ninpu", case_type="pregnancy_support"
    )
    s.case("case.member_assigned", "2026-07-16 09:40", k, function=MH, member=clinic)
    s.case("case.member_assigned", "2026-07-16 09:41", k, function=MH, member="tobu-hc")
    s.case(
        "case.shared",
        "2026-07-17 11:00",
        k,
        basis="cwa-25-2",
        function=MH,
        summary="特定妊婦として登録しました。妊婦健診の受診の声かけと、受診時の様子の共有をお願いします。",
    )
    s.add(
        "visit.report",
        CENTER,
        "2026-08-03 14:00",
        {"date": "2026-08-03", "observations": "保健師が訪問。健診の受診を約束。出産準備品がほとんどない。"},
        function=MH,
    )
    s.case(
        "case.reviewed",
        "2026-09-25 14:00",
        k,
        function=MH,
        decision="健診の受診が再開。出産後は乳児家庭全戸訪問を早めに実施する。",
        next_review="2026-12-18",
    )
    s.add(
        "health.checkup",
        clinic,
        "2026-10-30 11:00",
        {"checkup": "妊婦健康診査", "date": "2026-10-30", "findings": "妊娠35週、経過順調"},
    )
    return s


def _child_05() -> Story:
    """小2: a family moving to 大分市, the case handed over (ケース移管); a note with a sensitive field."""
    s, k, school, plan = Story("child-05"), "K-2026-019", "beppu-es-yamanami", "P-2026-040"
    s.registered("2026-04-01 09:00", "2018-07-21", "イノウエ アオイ")
    s.enrolled(school, "2026-04-06 08:30", "2026-0158", "小学2年")
    s.concern(
        school,
        "2026-05-19 16:00",
        "宿題や持ち物がそろわない日が続く。「お母さんがずっと寝ている」と本人が話す。",
        ["忘れ物の増加"],
    )
    s.case("case.registered", "2026-05-26 10:00", k, category="youshien", case_type="childcare_difficulty")
    s.case("case.member_assigned", "2026-05-26 10:05", k, member=school)
    s.listed(school, "2026-05-26 10:30", "2026-0158", "2026-06")
    s.case(
        "case.shared",
        "2026-05-27 15:00",
        k,
        basis="cwa-25-2",
        summary="要支援児童として登録しました。母の体調不良により家庭の養育が不安定です。持ち物や登校の様子の見守りをお願いします。",
    )
    s.add(
        "plan.created",
        CENTER,
        "2026-06-10 10:00",
        {
            "plan": plan,
            "version": 1,
            "wishes": ["体調を整えて子どもの世話ができるようになりたい"],
            "issues": ["母の体調不良", "家事・育児の停滞"],
            "supports": ["子育て世帯訪問支援事業（週2回）", "精神科受診の同行"],
            "review_due": "2026-09-10",
        },
    )
    s.monthly(school, "2026-07-06 16:00", "2026-06", 22, 20, 2, 0)
    s.monthly(school, "2026-08-05 16:00", "2026-07", 14, 14, 0, 0)
    s.add(
        "note.recorded",
        CENTER,
        "2026-08-18 15:00",
        {
            "text": "母から転居の相談。9月に大分市の母方祖母宅へ転居予定。転居後も支援の継続を希望。",
            "dv_history": "元夫から母へのDVあり（配偶者暴力相談支援センターに相談歴、保護命令申立て中）。"
            "転居先を元夫に知らせないこと。",
        },
        sensitive=["dv_history"],
    )
    s.add(
        "enrollment.ended", school, "2026-08-31 17:00", {"org": school, "student_no": "2026-0158", "grade": "小学2年"}
    )
    s.add(
        "target_list.removed",
        CENTER,
        "2026-08-31 17:30",
        {"school": school, "student_no": "2026-0158"},
        basis="cwa-25-3",
        to=school,
    )
    s.add("residence.changed", CENTER, "2026-09-01 09:00", {"residence": OITA})
    s.enrolled("oita-es-wakaba", "2026-09-01 08:30", "W-2026-311", "小学2年")
    s.case("case.transferred", "2026-09-02 10:00", k, to="oita-center")
    s.case(
        "case.closed",
        "2026-09-02 10:30",
        k,
        reason="大分市へのケース移管により終結",
        meeting="2026年9月 実務者会議（持ち回り）",
    )
    s.concern(
        "oita-es-wakaba",
        "2026-09-24 16:30",
        "転入後、休み時間にひとりで過ごすことが多い。「前の家のことは話しちゃだめ」と言う。",
        ["孤立"],
    )
    s.add(
        "case.registered",
        "oita-center",
        "2026-10-02 10:00",
        {"case": "O-2026-207", "category": "youshien", "case_type": "childcare_difficulty"},
    )
    s.add(
        "note.recorded",
        "oita-center",
        "2026-10-02 11:00",
        {"text": "別府市からケース移管を受け、要支援児童として登録。学校・祖母と連携して見守る。"},
    )
    return s


def _child_06() -> Story:
    """3歳, 公立保育所: a plan the family does not want shared (consent.refused): support continues inside."""
    s, plan, nursery = Story("child-06"), "P-2026-052", "beppu-hoikusho-kitahama"
    s.registered("2026-04-01 09:00", "2022-12-08", "キムラ レン")
    s.enrolled(nursery, "2026-04-01 08:00", "K-22-044", "3歳児クラス")
    s.add(
        "health.checkup",
        CENTER,
        "2026-05-28 14:00",
        {
            "checkup": "3歳児健康診査",
            "date": "2026-05-28",
            "findings": ["ことばの遅れ（二語文が少ない）", "母の育児不安が強い"],
        },
        function=MH,
    )
    s.concern(
        nursery,
        "2026-06-18 17:00",
        "母が「叱っても言うことをきかない、もう無理」と話す。夜泣きが続いていると本人の様子から推測される。",
    )
    s.add(
        "plan.created",
        CENTER,
        "2026-07-09 10:00",
        {
            "plan": plan,
            "version": 1,
            "wishes": ["子どもとの関わり方を知りたい"],
            "issues": ["母の育児不安", "発達への心配"],
            "supports": ["親子関係形成支援事業（ペアレント・トレーニング）", "発達相談"],
        },
        function=MH,
    )
    s.add("consent.refused", CENTER, "2026-07-09 10:30", {"plan": plan}, function=MH)
    s.add(
        "note.recorded",
        CENTER,
        "2026-07-10 09:00",
        {"text": "母はプラン内容を保育所と共有することを希望しなかった。内部の支援計画で支援を継続する。"},
        function=MH,
    )
    s.add(
        "service.usage",
        "kosodate-net",
        "2026-09-29 10:00",
        {"service": "親子関係形成支援事業", "from": "2026-09-29"},
        basis="commissioned",
        to=CENTER,
    )
    return s


def _child_07() -> Story:
    """2歳, 私立保育園: consent granted to the nursery, later withdrawn."""
    s, plan, nursery = Story("child-07"), "P-2026-027", "himawari-hoikuen"
    s.registered("2026-04-01 09:00", "2024-03-03", "オガワ ヒナタ")
    s.enrolled(nursery, "2026-04-01 08:00", "H-24-009", "1歳児クラス")
    s.add(
        "plan.created",
        CENTER,
        "2026-04-22 10:00",
        {
            "plan": plan,
            "version": 1,
            "wishes": ["就職活動の時間をつくりたい"],
            "issues": ["ひとり親家庭の経済的困窮"],
            "supports": ["一時預かり", "自立相談支援機関への相談同行"],
        },
    )
    consent = s.add(
        "consent.granted",
        CENTER,
        "2026-04-22 10:30",
        {"plan": plan, "version": 1, "recipients": [nursery], "signed_by": "母"},
    )
    s.concern(
        nursery, "2026-06-11 16:45", "おむつ替えが十分でなく、かぶれがひどい。同じ服が3日続いた。", ["衛生面の不十分さ"]
    )
    s.add(
        "consent.withdrawn",
        CENTER,
        "2026-07-30 14:00",
        {"consent": consent, "reason": "母が「保育園に家のことを知られたくない」と同意を撤回"},
    )
    s.add(
        "note.recorded",
        CENTER,
        "2026-08-05 10:00",
        {"text": "同意撤回を受け、保育園へのプランの共有を停止。園には撤回の事実のみ伝えた。"},
    )
    return s


def _child_08() -> Story:
    """小6: a possible young carer, a 要支援 case that is reviewed and closed."""
    s, k, school = Story("child-08"), "K-2026-015", "beppu-es-hamakaze"
    s.registered("2026-04-01 09:00", "2014-10-10", "ハヤシ ミオ")
    s.enrolled(school, "2026-04-06 08:30", "2026-0087", "小学6年")
    s.concern(
        school,
        "2026-04-23 16:00",
        "弟妹の世話で遅刻が増えている。授業中に居眠りが多い。",
        ["遅刻の増加", "ヤングケアラーの可能性"],
    )
    s.case("case.registered", "2026-05-11 11:00", k, category="youshien", case_type="young_carer")
    s.case("case.member_assigned", "2026-05-11 11:05", k, member=school)
    s.case(
        "case.shared",
        "2026-05-13 15:30",
        k,
        basis="cwa-25-2",
        summary="ヤングケアラーの可能性があり要支援児童として登録しました。家事支援の導入を調整中です。"
        "遅刻や疲れの様子を見守ってください。",
    )
    s.add(
        "service.usage",
        "kosodate-net",
        "2026-05-20 10:00",
        {"service": "子育て世帯訪問支援事業（家事支援）", "from": "2026-05-20", "to": "2026-09-30"},
        basis="commissioned",
        to=CENTER,
    )
    s.case(
        "case.reviewed",
        "2026-07-14 14:00",
        k,
        decision="家事支援により本人の負担が軽くなり、遅刻が減った。",
        next_review="2026-10-13",
    )
    s.case("case.reviewed", "2026-10-13 14:00", k, decision="状況が改善し安定している。終結とする。")
    s.case(
        "case.closed",
        "2026-10-13 14:30",
        k,
        reason="家事支援の導入により本人の負担が解消し、登校状況も安定したため",
        meeting="2026年10月 実務者会議",
    )
    return s


def _child_09() -> Story:
    """4歳, 認定こども園: a concern; the centre's health nurse follows up. Not a 要対協 case."""
    s, nursery = Story("child-09"), "sakura-kodomoen"
    s.registered("2026-04-01 09:00", "2022-05-05", "イシダ ソラ")
    s.enrolled(nursery, "2026-04-01 08:00", "S-22-031", "年少（3歳児クラス）")
    s.concern(nursery, "2026-06-24 17:00", "週明けに空腹を訴えることが多く、朝食をとっていない様子。", ["空腹の訴え"])
    s.add(
        "note.recorded",
        CENTER,
        "2026-07-01 15:00",
        {"text": "保健師が家庭訪問。父子家庭で父は夜勤がある。朝食の準備について助言し、こども食堂を紹介した。"},
        function=MH,
    )
    return s


def _child_10() -> Story:
    """小1: a school's concern, answered by a home visit; nothing else involves the school."""
    s, school = Story("child-10"), "beppu-es-yamanami"
    s.registered("2026-04-01 09:00", "2019-08-19", "マツモト ユウキ")
    s.enrolled(school, "2026-04-06 08:30", "2026-0021", "小学1年")
    s.concern(
        school,
        "2026-06-30 16:00",
        "暑い日でも長袖を着ており、着替えを嫌がる。水泳の授業を見学し続けている。",
        ["着替えの拒否"],
    )
    s.add(
        "visit.report",
        CENTER,
        "2026-07-02 17:00",
        {
            "date": "2026-07-02",
            "observations": "家庭訪問。アトピー性皮膚炎で肌を見せたくないとのこと。皮膚科に通院中。"
            "虐待を疑わせる所見はない。",
        },
    )
    return s


def _child_11() -> Story:
    """0歳: 母子保健 (the 保健所's concern about the mother, home visit, 4-month check-up, 産後ケア)."""
    s = Story("child-11")
    s.registered("2026-05-12 09:00", "2026-05-09", "モリ イチカ", function=MH)
    s.add(
        "visit.report",
        CENTER,
        "2026-06-22 14:00",
        {
            "date": "2026-06-22",
            "observations": "乳児家庭全戸訪問（こんにちは赤ちゃん事業）。体重増加は良好。",
            "mental_health": "母に産後の気分の落ち込みあり（EPDS 12点）。精神科受診を勧めた。",
        },
        function=MH,
        sensitive=["mental_health"],
    )
    s.concern(
        "tobu-hc",
        "2026-07-08 16:00",
        "母が精神保健福祉相談に来所。育児への強い不安を訴え、夜間に赤ちゃんの泣き声で眠れないと話す。",
    )
    s.add(
        "health.checkup",
        CENTER,
        "2026-09-14 14:00",
        {"checkup": "4か月児健康診査", "date": "2026-09-14", "findings": ["発育・発達は順調"]},
        function=MH,
    )
    s.add(
        "service.usage",
        "kosodate-net",
        "2026-09-20 10:00",
        {"service": "産後ケア事業（通所型）", "from": "2026-09-20"},
        basis="commissioned",
        to=CENTER,
    )
    return s


def _child_12() -> Story:
    """中1: rising absences, on the list with monthly reports, a no-contact alert, a 要支援 case."""
    s, k, school = Story("child-12"), "K-2026-024", "beppu-jhs-tsurumidai"
    s.registered("2026-04-01 09:00", "2013-06-11", "スズキ カイト")
    s.enrolled(school, "2026-04-07 08:30", "2026-0307", "中学1年")
    s.concern(
        school,
        "2026-06-10 16:00",
        "5月下旬から欠席が増えている。家庭に電話がつながらない日がある。",
        ["欠席の増加", "保護者と連絡がとれない"],
    )
    s.case("case.registered", "2026-06-22 10:00", k, category="youshien", case_type="neglect")
    s.case("case.member_assigned", "2026-06-22 10:05", k, member=school)
    s.case("case.member_assigned", "2026-06-22 10:06", k, member="beppu-boe")
    s.listed(school, "2026-06-22 10:30", "2026-0307", "2026-06")
    s.case(
        "case.shared",
        "2026-06-24 15:00",
        k,
        basis="cwa-25-2",
        summary="要支援児童として登録しました。欠席が3日続くとき、または連絡がとれないときは当日中にセンターへ。"
        "スクールソーシャルワーカーの関与を教育委員会に依頼しています。",
    )
    s.monthly(school, "2026-07-06 16:00", "2026-06", 22, 16, 6, 3, reasons=["体調不良", "連絡なし"])
    s.monthly(school, "2026-08-05 16:00", "2026-07", 14, 9, 5, 4, reasons=["連絡なし"])
    s.monthly(school, "2026-09-04 16:00", "2026-08", 4, 2, 2, 2)
    s.add(
        "absence.alert",
        school,
        "2026-09-11 09:10",
        {"reason": "no_contact", "days": 3, "since": "2026-09-09"},
        basis="cwa-25-3",
        to=CENTER,
    )
    s.case(
        "case.reviewed",
        "2026-09-16 14:00",
        k,
        decision="スクールソーシャルワーカーと家庭訪問。教育支援センター（適応指導教室）の利用を提案。",
        next_review="2026-12-15",
    )
    s.monthly(school, "2026-10-05 16:00", "2026-09", 20, 10, 10, 6, reasons=["連絡なし", "体調不良"])
    s.monthly(school, "2026-11-05 16:00", "2026-10", 21, 12, 9, 3, notes="教育支援センターに週2回通所を開始")
    # 事前照会 for the December meeting: the board of education answered, the school has not (overdue)
    for n, member in enumerate((school, "beppu-boe"), start=1):
        s.case(
            "inquiry.sent",
            "2026-11-13 09:00",
            k,
            basis="cwa-25-3",
            inquiry=f"Q-2026-12-024-{n}",
            meeting_date="2026-12-11",
            due="2026-11-20",
            questions="11月の登校状況と、教育支援センターへの通所の様子を教えてください。",
        )
        s.events[-1]["to"] = member
    s.add(
        "inquiry.answered",
        "beppu-boe",
        "2026-11-19 15:00",
        {
            "inquiry": "Q-2026-12-024-2",
            "no_change": False,
            "observations": "教育支援センターに週2回通所が続いている。表情は明るくなってきた。",
            "actions": "スクールソーシャルワーカーが月2回家庭訪問。",
            "safety_scale": 6,
        },
        basis="cwa-25-3",
        to=CENTER,
    )
    return s


def _child_13() -> Story:
    """小3: a 要支援 case whose member school answered the September round with a safety scale of 7 (事前照会);
    the December round is left for the demo's visitors (and the browser journey) to send."""
    s, k, school = Story("child-13"), "K-2026-033", "beppu-es-hamakaze"
    s.registered("2026-04-01 09:00", "2017-10-02", "モリ ユイ")
    s.enrolled(school, "2026-04-06 08:30", "2026-0233", "小学3年")
    s.concern(school, "2026-06-30 16:00", "朝食を食べていないと話す日が週に何度かある。", ["空腹の訴え"])
    s.case("case.registered", "2026-07-08 10:00", k, category="youshien", case_type="neglect")
    s.case("case.member_assigned", "2026-07-08 10:05", k, member=school)
    s.case(
        "inquiry.sent",
        "2026-09-01 09:00",
        k,
        basis="cwa-25-3",
        inquiry="Q-2026-09-033-1",
        meeting_date="2026-09-14",
        due="2026-09-10",
    )
    s.events[-1]["to"] = school
    s.add(
        "inquiry.answered",
        school,
        "2026-09-08 16:00",
        {
            "inquiry": "Q-2026-09-033-1",
            "no_change": False,
            "observations": "2学期は毎日登校している。給食はよく食べる。",
            "actions": "担任が朝の様子を見ている。",
            "safety_scale": 7,
            "attendance": {"days": 6, "absent": 0, "absent_without_contact": 0},
        },
        basis="cwa-25-3",
        to=CENTER,
    )
    s.case("case.reviewed", "2026-09-14 14:00", k, decision="学校での見守りを継続。", next_review="2026-12-11")
    return s


# --- Households (世帯, meetings-and-services.md §3) -------------------------------------------------------------
# The ナカムラ family (child-04, child-16, child-14, child-15): the 特定妊婦 of child-04 gives birth; the newborn's case continues hers, and the centre links
# the mother's record, the newborn and two older siblings at two schools into one household (H-2026-003), so that
# each child's page shows the others with their open cases, open alerts and overdue reports.

HOUSEHOLD = "H-2026-003"


def _child_16() -> Story:
    """新生児: the newborn of the 特定妊婦 (child-04); the 特定妊婦 case continues into the newborn's 要支援 case."""
    s, k = Story("child-16"), "K-2026-041"
    s.registered("2026-11-16 10:00", "2026-11-12", "ナカムラ ヒナ", function=MH)
    s.add(
        "health.checkup",
        CENTER,
        "2026-11-17 14:00",
        {"checkup": "新生児訪問", "date": "2026-11-17", "findings": ["体重増加は順調", "母の睡眠不足と不安の訴え"]},
        function=MH,
    )
    s.case(
        "case.registered",
        "2026-11-18 09:30",
        k,
        function=MH,
        category="youshien",
        case_type="childcare_difficulty",
        continues="K-2026-022",
    )
    s.case("case.member_assigned", "2026-11-18 09:35", k, function=MH, member="tobu-hc")
    s.add("household.joined", CENTER, "2026-11-19 10:00", {"household": HOUSEHOLD, "relation": "newborn"})
    return s


def _child_14() -> Story:
    """小3, はまかぜ小: the newborn's brother; absences since the birth, a 要支援 case with the school."""
    s, k, school = Story("child-14"), "K-2026-042", "beppu-es-hamakaze"
    s.registered("2026-04-01 09:00", "2018-01-22", "ナカムラ ソウ")
    s.enrolled(school, "2026-04-06 08:30", "2026-0233", "小学3年")
    s.concern(
        school,
        "2026-11-13 16:00",
        "母の出産後、遅刻と忘れ物が続く。「夜、赤ちゃんの世話をしている」と話した。",
        ["遅刻の増加", "疲れた様子"],
    )
    s.case("case.registered", "2026-11-16 11:00", k, category="youshien", case_type="young_carer")
    s.case("case.member_assigned", "2026-11-16 11:05", k, member=school)
    s.case(
        "case.shared",
        "2026-11-16 11:30",
        k,
        basis="cwa-25-2",
        summary="要支援児童として登録しました。妹の誕生後の家庭の負担を見守り、欠席が続くときはセンターへ。",
    )
    s.add(
        "absence.alert",
        school,
        "2026-11-20 09:10",
        {"reason": "consecutive_absence", "days": 3, "since": "2026-11-18"},
        basis="cwa-21-10-5",
    )
    s.add("household.joined", CENTER, "2026-11-19 10:01", {"household": HOUSEHOLD, "relation": "sibling"})
    return s


def _child_15() -> Story:
    """中1, 鶴見台中: the newborn's sister, on the school's list since October; October's report has not come."""
    s, school = Story("child-15"), "beppu-jhs-tsurumidai"
    s.registered("2026-04-01 09:00", "2013-09-02", "ナカムラ アイ")
    s.enrolled(school, "2026-04-07 08:30", "2026-0311", "中学1年")
    s.concern(school, "2026-10-02 16:00", "9月から保健室登校が増えた。家のことを一人でしていると話す。")
    s.listed(school, "2026-10-05 10:30", "2026-0311", "2026-10")
    s.add("household.joined", CENTER, "2026-11-19 10:02", {"household": HOUSEHOLD, "relation": "sibling"})
    return s


def _household_of_child_04() -> Story:
    """The 特定妊婦's own record (child-04) joins the household as the mother."""
    s = _child_04()
    s.add("household.joined", CENTER, "2026-11-19 10:03", {"household": HOUSEHOLD, "relation": "mother"})
    return s


STORIES = (
    _child_01,
    _child_02,
    _child_03,
    _household_of_child_04,
    _child_05,
    _child_06,
    _child_07,
    _child_08,
    _child_09,
    _child_10,
    _child_11,
    _child_12,
    _child_13,
    _child_14,
    _child_15,
    _child_16,
)


# --- Family-support services (家庭支援事業, meetings-and-services.md §2) ------------------------------------------


def _family_support(stories: dict[str, Story]) -> None:
    """child-02's family: a written recommendation of 子育て世帯訪問支援事業 accepted, the referral to
    kosodate-net with what it needs to know, its monitoring (due again since September), an order for ショートステイ,
    a September visit report the centre acknowledged, and an urgent visit report still waiting on the start page.
    Appended after the child's own events, so the earlier ids stay as they were."""
    s, provider = stories["child-02"], "kosodate-net"
    s.add(
        "service.recommended",
        CENTER,
        "2026-05-01 11:00",
        {
            "recommendation": "R-2026-002",
            "service": "子育て世帯訪問支援事業",
            "form": "written",
            "reason": "母の睡眠不足と双子の育児負担。家事・育児支援で休息の時間をつくる。",
        },
    )
    s.add(
        "service.recommendation_result",
        CENTER,
        "2026-05-07 11:00",
        {"recommendation": "R-2026-002", "result": "accepted", "note": "プラン作成の面談で利用を希望"},
    )
    s.add(
        "service.referred",
        CENTER,
        "2026-05-08 10:00",
        {
            "referral": "F-2026-002",
            "service": "子育て世帯訪問支援事業",
            "start": "2026-05-15",
            "frequency": "週1回（火曜午後）",
            "summary": "ひとり親。双子の弟（1歳）あり。母は睡眠不足で疲れている。家事支援と、母が休める時間の確保を。",
        },
        basis="commissioned",
        to=provider,
    )
    s.add(
        "service.monitoring",
        provider,
        "2026-06-12 16:00",
        {
            "referral": "F-2026-002",
            "observations": "訪問4回。母と夕食の作り置き。本人は落ち着いて遊べている。母の表情はまだ硬い。",
            "recommendation": "continue",
        },
        basis="commissioned",
        to=CENTER,
    )
    s.add(
        "service.ordered",
        CENTER,
        "2026-08-20 10:00",
        {
            "order": "O-2026-014",
            "service": "子育て短期支援事業（ショートステイ）",
            "from": "2026-09-01",
            "notice_date": "2026-08-20",
        },
    )
    september = next(e["id"] for e in s.events if e["kind"] == "visit.report" and e["at"].startswith("2026-09-10"))
    s.add(
        "report.acknowledged",
        CENTER,
        "2026-09-11 09:30",
        {"report": september, "note": "ショートステイの説明を次回面談で改めて行います", "handled_by": "佐藤 花子"},
        basis="commissioned",
        to=provider,
    )
    s.add(
        "visit.report",
        provider,
        "2026-11-20 18:30",
        {
            "date": "2026-11-20",
            "observations": "訪問時、本人の左腕に小さなあざ。母は疲れた様子で口数が少ない。",
            "urgent": True,
            "urgent_reason": "本人が「ママにたたかれた」と話した。",
        },
        basis="commissioned",
        to=CENTER,
        sensitive=["urgent_reason"],
    )


def demo_events() -> list[dict[str, Any]]:
    """Every event of the demo, in the order of the log (by time; each child's events in their own order)."""
    stories = [story() for story in STORIES]
    _family_support({s.child: s for s in stories})
    events = [(e["at"], n, i, e) for n, s in enumerate(stories) for i, e in enumerate(s.events)]
    return [e for *_, e in sorted(events, key=lambda x: x[:3])]


def demo_children() -> list[str]:
    return [story().child for story in STORIES]


DEMO_SETTINGS = {"joint_ledger": True}
"""The demo is an 大分-style deployment: the joint ledger (共同管理台帳) is on."""


def record_demo_settings(hub: Hub, *, by: str = "tsunagu demo") -> list[dict[str, Any]]:
    """Record the demo's settings (``DEMO_SETTINGS``) in the hub's store, as a change by ``by`` when they are not
    in force yet (the store's other settings are left as they are); the changes recorded."""
    return hub.settings_source.change(DEMO_SETTINGS, by=by, at=hub.clock())


@dataclass
class DemoResult:
    orgs: OrgLoadResult
    accepted: int = 0
    duplicate: int = 0
    rejected: list[tuple[dict[str, Any], PublishResult]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


def load_demo(hub: Hub) -> DemoResult:
    """Register the organisations and publish the events through the hub's real paths. Idempotent."""
    if not hub.settings.joint_ledger:
        raise ValueError(
            "the demo needs the joint ledger on (tsunagu settings set joint_ledger true) / "
            "デモには共同管理台帳の設定（joint_ledger）が必要です"
        )
    result = DemoResult(hub.load_orgs(ORGS))
    load_regions(hub.store, read_regions_file(REGIONS_FILE.read_bytes()))
    events = demo_events() + background_events()
    for r in hub.publish(events):
        if r.outcome == "accepted":
            result.accepted += 1
        elif r.outcome == "duplicate":
            result.duplicate += 1
        else:
            result.rejected.append((events[r.index], r))
    return result


# --- How to try it ------------------------------------------------------------------------------------------

EXAMPLES: list[tuple[str, str, str, str, str, str]] = [
    # (Japanese, English, child, org, role, purpose)
    (
        "別府市こども家庭センターのケースワーカー：学校の気づき・出欠報告・児相の台帳記録を含む全体",
        "A caseworker at the 別府市 centre: the school's concern, the attendance reports, the 児相's ledger entries",
        "child-01",
        "beppu-center",
        "caseworker",
        "support",
    ),
    (
        "はまかぜ小の教員：自校の記録と、要対協で共有された内容だけ（他機関の記録は見えない）",
        "A teacher at はまかぜ小: its own records and what the 要対協 shared with it, nothing else",
        "child-01",
        "beppu-es-hamakaze",
        "teacher",
        "support",
    ),
    (
        "やまなみ小の教員：自校が送った気づきだけ（センターの訪問記録は見えない）",
        "A teacher at やまなみ小: only its own concern (not the centre's home visit)",
        "child-10",
        "beppu-es-yamanami",
        "teacher",
        "support",
    ),
    (
        "中央児童相談所：共同管理台帳のケース（登載後の出欠報告・アラートを含む）",
        "The 中央児相: the joint-ledger case, with the reports the centre received after it was put on the ledger",
        "child-01",
        "chuo-jiso",
        "caseworker",
        "support",
    ),
    (
        "中央児童相談所の緊急時アクセス（2026-11-22 22:40 の宣言から24時間以内だけ）",
        "The 中央児相's emergency access (only within 24 hours of the declaration at 2026-11-22 22:40)",
        "child-03",
        "chuo-jiso",
        "caseworker",
        "emergency",
    ),
    (
        "認定こども園さくら：同意を得たプラン第1版だけ（第2版は見えない、機微情報は非開示）",
        "The nursery さくら: the consented plan version 1 only (not version 2; the sensitive field redacted)",
        "child-02",
        "sakura-kodomoen",
        "nursery_staff",
        "support",
    ),
    (
        "大分市こども家庭センター：別府市から移管されたケース（機微情報は非開示）",
        "The 大分市 centre: the case handed over from 別府市 (the sensitive field redacted)",
        "child-05",
        "oita-center",
        "caseworker",
        "support",
    ),
    (
        "監査担当：ケースの内容は読めない（拒否され、拒否も記録される）",
        "The auditor: no case content (refused, and the refusal is recorded)",
        "child-01",
        "beppu-audit",
        "auditor",
        "support",
    ),
]


def try_it(prog: str = "tsunagu", database: str | None = None) -> str:
    """The bilingual 'how to try it' text printed after the demo loads."""
    db = f" --database {database}" if database else ""
    lines = [
        "■ 試してみる / Try it",
        "",
        "  このデモは共同管理台帳（大分モデル）を有効にした設定で、設定は保存先に記録されています：",
        "  The demo is an 大分-style deployment with the joint ledger on, a setting recorded in the store:",
        "",
        f"    {prog} settings show{db}",
        "",
    ]
    for ja, en, child, org, role, purpose in EXAMPLES:
        lines += [
            f"  # {ja}",
            f"  # {en}",
            f"  {prog} timeline {child} --org {org} --role {role} --purpose {purpose}{db}",
            "",
        ]
    lines += [
        "  # 監査：すべての閲覧記録を現在の規則で再評価し、ハッシュの連鎖を確かめる",
        "  # Audit: re-evaluate every access record against the log and check the hash chain",
        f"  {prog} audit verify{db}",
        "",
        "■ HTTP API",
        "",
        "  # APIを起動する（OpenAPI: http://127.0.0.1:8080/docs）。開発用の認証基盤つき（本番では使わない）",
        "  # start the API (OpenAPI at /docs), with the development sign-in provider (never in production)",
        f"  TSUNAGU_DEV_OIDC=1 {prog} serve{db}",
        "  # 別の端末で、機関と役割を指定してトークンを発行し、読む / in another terminal, mint a token and read",
        f"  TOKEN=$({prog} token issue --org beppu-center --role caseworker{db})",
        '  curl -H "Authorization: Bearer $TOKEN" \\',
        "    'http://127.0.0.1:8080/v1/children/child-01/timeline?purpose=support'",
        "  # または職員としてログインする（sato：別府市こども家庭センターのケースワーカー）",
        "  # or sign in as a staff member (sato, a caseworker of the 別府市 centre) and exchange the ID token",
        "  ID_TOKEN=$(curl -s -d username=sato http://127.0.0.1:8080/dev-oidc/token \\",
        "    | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id_token\"])')",
        "  curl -s -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer -d assertion=$ID_TOKEN \\",
        "    http://127.0.0.1:8080/oauth/token",
        "",
        "  閲覧はすべて規則で判定され、許可・拒否にかかわらず記録されます。",
        "  Every read is decided by the policy and recorded, allowed or refused.",
    ]
    return "\n".join(lines)
