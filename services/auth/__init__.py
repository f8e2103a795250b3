"""Authentication: the hub's signed tokens and their keys, the OAuth token endpoint, staff sign-in through
OpenID Connect, adapter clients, and the development sign-in provider.
"""
