-- Incidents (one attack wave in one region) and the posts that make them up. Aggregates
-- (kinds, counts, channels, confidence) are derived from the members and stored for review.
CREATE TABLE incidents (
    id             TEXT    PRIMARY KEY,       -- stable: region, first report, short hash
    region         TEXT    NOT NULL,          -- ISO 3166-2
    status         TEXT    NOT NULL CHECK (status IN ('active', 'closed', 'retracted')),
    closed_reason  TEXT,                      -- quiet | all_clear | retracted
    first_report   INTEGER NOT NULL,          -- unix seconds, the posts' own dates
    last_report    INTEGER NOT NULL,
    kinds          TEXT    NOT NULL,          -- JSON array
    counts         TEXT    NOT NULL,          -- JSON object: kind → largest count reported
    cleared        TEXT    NOT NULL,          -- JSON array: threat kinds all-clears have ended
    posts          INTEGER NOT NULL,          -- reports
    channels       INTEGER NOT NULL,
    independent    INTEGER NOT NULL,          -- channels that reported it on their own
    confidence     REAL    NOT NULL,
    official       INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,          -- wall clock, for audit
    updated_at     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX incidents_active ON incidents (region) WHERE status = 'active';
CREATE INDEX incidents_by_first_report ON incidents (first_report);
CREATE INDEX incidents_by_last_report ON incidents (last_report);

CREATE TABLE incident_posts (
    incident_id    TEXT    NOT NULL REFERENCES incidents ON DELETE CASCADE,
    channel_id     INTEGER NOT NULL,
    message_id     INTEGER NOT NULL,
    date           INTEGER NOT NULL,
    role           TEXT    NOT NULL CHECK (role IN ('report', 'all_clear')),
    kinds          TEXT    NOT NULL,          -- JSON array
    counts         TEXT    NOT NULL,          -- JSON object
    independence   TEXT    NOT NULL CHECK (independence IN ('original', 'echo', 'copy', 'forward')),
    via            TEXT    NOT NULL,          -- first | region | near_duplicate | follow_up
    similar_to     TEXT,                      -- "channel_id/message_id" of the post it copies
    similarity     REAL,
    trust          REAL    NOT NULL,
    official       INTEGER NOT NULL,
    forwarded      INTEGER NOT NULL,          -- 1: a forward of another channel's post
    PRIMARY KEY (incident_id, channel_id, message_id)
) WITHOUT ROWID;

CREATE INDEX incident_posts_by_post ON incident_posts (channel_id, message_id);
