-- Posts as received (one row per channel post, updated in place when edited) and the
-- detector's verdict on each, with the evidence that explains it.
CREATE TABLE posts (
    channel_id     INTEGER NOT NULL,
    message_id     INTEGER NOT NULL,
    date           INTEGER NOT NULL,          -- unix seconds, UTC
    edit_date      INTEGER,
    text           TEXT    NOT NULL,
    forwarded_from TEXT,
    grouped_id     INTEGER,
    reply_to       INTEGER,
    link           TEXT,
    stored_at      INTEGER NOT NULL,
    PRIMARY KEY (channel_id, message_id)
) WITHOUT ROWID;

CREATE INDEX posts_by_date ON posts (date);

CREATE TABLE detections (
    channel_id     INTEGER NOT NULL,
    message_id     INTEGER NOT NULL,
    alert          INTEGER NOT NULL,          -- 1: reports a current event in some region
    flagged        INTEGER NOT NULL,          -- 1: alert in a watched region
    all_clear      INTEGER NOT NULL,
    kinds          TEXT    NOT NULL,          -- JSON array
    regions        TEXT    NOT NULL,          -- JSON array, every region found
    score          REAL    NOT NULL,
    rejected       TEXT    NOT NULL,          -- JSON array: why terms or the post were voided
    evidence       TEXT    NOT NULL,          -- JSON array of {rule, text, span, kind, region, place}
    detected_at    INTEGER NOT NULL,
    PRIMARY KEY (channel_id, message_id),
    FOREIGN KEY (channel_id, message_id) REFERENCES posts ON DELETE CASCADE
) WITHOUT ROWID;

CREATE INDEX detections_flagged ON detections (flagged) WHERE flagged = 1;
