"""The audit explorer: a read-only web application over the AuditLedger's events.

    index.py     Index: the chain's events copied incrementally into SQLite (resumes
                 after a restart, rebuilds itself after a chain reset), IndexStatus
    queries.py   pure read functions over the index: the pages' contexts and the
                 /api/ payloads (one source of truth)
    app.py       the Starlette application: pages, /api/, live updates, proof upload
    present.py   the templates' filters (hashes, epsilons, budget fractions)
    uploads.py   bounded proof uploads (413 past the limit)
    verdicts.py  proof verdicts as JSON for the verify endpoints
    server.py    Hypercorn (trio worker) serving the app while a task syncs the index

Import the modules explicitly: importing this package stays cheap.
"""
