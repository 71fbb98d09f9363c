-- Channels the watcher follows, named in CHANNELS or by an operator and resolved once, with
-- the watcher's own read marker (the last message id processed) and each channel's health;
-- and small facts the service keeps about itself (when the watcher last saw Telegram).
CREATE TABLE channels (
    ref             TEXT    PRIMARY KEY,       -- as named: '@username' (lower case) or a bare id
    source          TEXT    NOT NULL CHECK (source IN ('config', 'operator')),
    -- pending: not resolved yet; active: followed; failed: cannot be followed (see last_error);
    -- removed: an operator removed it (CHANNELS does not bring it back)
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'active', 'failed', 'removed')),
    channel_id      INTEGER,                   -- Telegram's id without -100, once resolved
    access_hash     INTEGER,                   -- lets an id be read without the session's cache
    username        TEXT,
    title           TEXT,
    home            TEXT,                      -- region code; '-': never from the title
    trust           REAL    NOT NULL DEFAULT 1,
    official        INTEGER NOT NULL DEFAULT 0,
    joined          INTEGER NOT NULL DEFAULT 0,
    last_message_id INTEGER,                   -- the newest message processed
    last_post_at    INTEGER,                   -- its date, unix seconds
    last_error      TEXT,
    last_error_at   INTEGER,
    added_at        INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE UNIQUE INDEX channels_by_id ON channels (channel_id)
    WHERE channel_id IS NOT NULL AND state != 'removed';

CREATE TABLE service_state (
    key             TEXT    PRIMARY KEY,
    value           TEXT    NOT NULL,
    updated_at      INTEGER NOT NULL
) WITHOUT ROWID;

-- Posts the pipeline failed to process: read again and retried at each catch-up, then
-- given up (kept for review).
CREATE TABLE watch_failures (
    channel_id      INTEGER NOT NULL,
    message_id      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    error           TEXT    NOT NULL,
    given_up        INTEGER NOT NULL DEFAULT 0,
    first_at        INTEGER NOT NULL,
    last_at         INTEGER NOT NULL,
    PRIMARY KEY (channel_id, message_id)
) WITHOUT ROWID;
