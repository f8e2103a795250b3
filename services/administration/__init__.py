"""Administration of a deployment: the organisation registry (機関登録) and the policy settings kept in
the store with their history.
"""
