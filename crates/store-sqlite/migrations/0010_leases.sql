-- Named leases: one holder at a time for work that only one of several instances sharing the
-- database may do (ordering the ACME certificate). A lease lapses at `expires_at` (Unix
-- microseconds), after which any instance may take it.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
