"""Reading: the only way content leaves the hub. A child's timeline for a reader, decided by the policy and
recorded in the hash-chained access log before anything is returned.
"""
