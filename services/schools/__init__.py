"""Schools and nurseries: monthly and daily attendance files (定期的な情報提供), overdue reports, absence
alerts.
"""
