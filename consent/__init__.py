"""The policy (policy.md): who may publish what, each event's direct audience, and the read rules of each
version, as pure, deterministic functions with no I/O, each citing its legal ground."""
