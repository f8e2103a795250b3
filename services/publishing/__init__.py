"""Publishing: the one path every event takes into the hub (parse, resolve local numbers, admit under
the policy, append, project), and the queues of events that wait (for a number's link, for a child's residence).
"""
