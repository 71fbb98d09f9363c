-- Subscribers (chats that receive alerts), what they have been told of each incident, and
-- the outbox of alert messages: one row per (incident, chat, message) with its state.
CREATE TABLE subscribers (
    chat_id        INTEGER PRIMARY KEY,
    kind           TEXT    NOT NULL DEFAULT 'private',  -- private | group | supergroup | channel
    language       TEXT    NOT NULL DEFAULT 'ru' CHECK (language IN ('ru', 'uk', 'en')),
    regions        TEXT,                                -- JSON array; NULL: every watched region
    muted_until    INTEGER,                             -- unix seconds
    active         INTEGER NOT NULL DEFAULT 1,
    deactivated    TEXT,                                -- why delivery stopped ("bot was blocked")
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE alert_state (
    incident_id    TEXT    PRIMARY KEY,
    kinds          TEXT    NOT NULL,                    -- JSON array: kinds subscribers were told
    counts         TEXT    NOT NULL,                    -- JSON object: counts they were told
    official       INTEGER NOT NULL,                    -- 1: they were told it is confirmed
    version        INTEGER NOT NULL,                    -- bumps with every change to show
    notices        INTEGER NOT NULL DEFAULT 0,          -- escalation notices sent so far
    updated_at     INTEGER NOT NULL
) WITHOUT ROWID;

-- seq 0 is the alert itself, edited in place as the incident grows; seq 1, 2... are short
-- escalation notices that reply to it.
CREATE TABLE outbox (
    incident_id    TEXT    NOT NULL,
    chat_id        INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    -- pending: to send or edit; sending: claimed by a delivery loop until lease_until;
    -- sent: the chat shows `version`; failed: given up; dropped: the chat or alert is gone
    state          TEXT    NOT NULL
                   CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'dropped')),
    lease_until    REAL,                                -- a claim's end: then it is due again
    notice         TEXT,                                -- for seq > 0: what the notice says
    version        INTEGER NOT NULL,                    -- alert_state version to show
    sent_version   INTEGER,                             -- version the chat shows now
    message_id     INTEGER,                             -- Telegram's, once sent
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_try       REAL    NOT NULL,                    -- unix seconds
    last_error     TEXT,
    edited_at      REAL,                                -- last send or edit, for coalescing
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (incident_id, chat_id, seq)
) WITHOUT ROWID;

CREATE INDEX outbox_due ON outbox (next_try) WHERE state = 'pending';
CREATE INDEX outbox_claimed ON outbox (lease_until) WHERE state = 'sending';
CREATE INDEX outbox_by_chat ON outbox (chat_id);
