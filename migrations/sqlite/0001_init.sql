-- Herald's schema on SQLite, the embedded store. It mirrors the PostgreSQL one;
-- times are Unix milliseconds and ids minted by Herald are UUID text.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT,
    phone       TEXT,
    time_zone   TEXT,
    locale      TEXT,
    name        TEXT,
    preferences TEXT   NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- A push token belongs to one user at a time; registering it again moves it.
CREATE TABLE devices (
    platform   TEXT   NOT NULL,
    token      TEXT   NOT NULL,
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (platform, token)
);
CREATE INDEX devices_by_user ON devices (user_id);

CREATE TABLE notifications (
    id         TEXT   PRIMARY KEY,
    event_id   TEXT   NOT NULL,
    template   TEXT   NOT NULL,
    category   TEXT,
    priority   TEXT   NOT NULL,
    source     TEXT   NOT NULL,
    event      TEXT   NOT NULL,
    created_at INTEGER NOT NULL
);

-- Saved answers for Idempotency-Key, written in the same transaction as the effect.
CREATE TABLE idempotency_keys (
    key             TEXT   PRIMARY KEY,
    request_hash    TEXT   NOT NULL,
    notification_id TEXT   NOT NULL,
    created_at      INTEGER NOT NULL
);

-- Messages committed with the change that caused them; the relay publishes and deletes them.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT   NOT NULL,
    msg_key     TEXT   NOT NULL,
    payload     TEXT   NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE INDEX outbox_by_lease ON outbox (lease_until, id);

CREATE TABLE deliveries (
    id                  TEXT   PRIMARY KEY,
    notification_id     TEXT   NOT NULL,
    user_id             TEXT   NOT NULL,
    channel             TEXT   NOT NULL,
    state               TEXT   NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    provider_message_id TEXT,
    last_error          TEXT,
    lease_token         TEXT,
    lease_until         INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX deliveries_by_notification ON deliveries (notification_id);

-- Every outcome reported for a delivery, once per state.
CREATE TABLE receipts (
    delivery_id         TEXT   NOT NULL,
    state               TEXT   NOT NULL,
    reason              TEXT,
    provider_message_id TEXT,
    at                  INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, state)
);

CREATE TABLE inbox (
    id              TEXT   PRIMARY KEY,
    user_id         TEXT   NOT NULL,
    notification_id TEXT   NOT NULL,
    category        TEXT   NOT NULL,
    title           TEXT   NOT NULL,
    body            TEXT   NOT NULL,
    created_at      INTEGER NOT NULL,
    read_at         INTEGER
);
CREATE INDEX inbox_by_user ON inbox (user_id, created_at DESC);
CREATE INDEX inbox_unread_by_user ON inbox (user_id) WHERE read_at IS NULL;

-- The embedded bus: one durable queue per topic, competing consumers.
-- A consumer leases a message until `lease_until`; acknowledging deletes it.
CREATE TABLE bus_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT    NOT NULL,
    msg_key     TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    deliveries  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);
CREATE INDEX bus_messages_ready ON bus_messages (topic, lease_until, id);
