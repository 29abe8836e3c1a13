"""Resources an environment uses, as tiers reaches them whatever runs the code.

``databases`` snapshots and restores a database by its URL (PostgreSQL through
pg_dump/pg_restore, SQLite through its online backup API) and reads its schema
fingerprint and migration head, so the pipeline's "the database as it was" promise holds
on every platform; ``binaries`` finds this machine's PostgreSQL programs.
"""
