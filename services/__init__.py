"""The application, in packages by capability (publishing, reading, projections, casework, schools, feeds, audit,
auth, administration) and by edge (cli, http), wired by the composition root ``services.hub``. See
docs/architecture.md."""
