-- What operators change from chat, and what they did: the watched regions (WATCH_REGIONS
-- seeds them), incidents marked as false positives, and an audit trail of every operator
-- command with its outcome.
CREATE TABLE watched_regions (
    region          TEXT    PRIMARY KEY,       -- ISO 3166-2
    source          TEXT    NOT NULL CHECK (source IN ('config', 'operator')),
    active          INTEGER NOT NULL,          -- 0: an operator unwatched it (config won't re-add)
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE false_positives (
    incident_id     TEXT    PRIMARY KEY REFERENCES incidents ON DELETE CASCADE,
    user_id         INTEGER NOT NULL,          -- the operator who marked it
    note            TEXT    NOT NULL,
    marked_at       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE audit (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,          -- unix seconds
    user_id         INTEGER NOT NULL,
    chat_id         INTEGER NOT NULL,
    command         TEXT    NOT NULL,
    args            TEXT    NOT NULL,
    result          TEXT    NOT NULL CHECK (result IN ('ok', 'refused', 'bad_input', 'error')),
    detail          TEXT    NOT NULL DEFAULT ''
);

CREATE INDEX audit_by_time ON audit (at);
