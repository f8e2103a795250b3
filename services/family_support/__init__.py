"""Family-support services (家庭支援事業, meetings-and-services.md §2): recommendations, orders, referrals to
providers, monitoring, the end of a service, and the centre's acknowledgement of a provider's (urgent) report.

``services.family_support.work``: the commands (``FamilySupport``), the views per centre and per provider with the
centre's urgent inbox (``SupportViews``), and the counts the aggregates will use (``usage_counts``,
``acknowledgement_times``).
"""
