-- Herald's schema on PostgreSQL. Times are Unix milliseconds (BIGINT) so the
-- same queries run on SQLite; ids minted by Herald are UUID text.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    email       TEXT,
    phone       TEXT,
    time_zone   TEXT,
    locale      TEXT,
    name        TEXT,
    preferences TEXT   NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- A push token belongs to one user at a time; registering it again moves it.
CREATE TABLE devices (
    platform   TEXT   NOT NULL,
    token      TEXT   NOT NULL,
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
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
    created_at BIGINT NOT NULL
);

-- Saved answers for Idempotency-Key, written in the same transaction as the effect.
CREATE TABLE idempotency_keys (
    key             TEXT   PRIMARY KEY,
    request_hash    TEXT   NOT NULL,
    notification_id TEXT   NOT NULL,
    created_at      BIGINT NOT NULL
);

-- Messages committed with the change that caused them; the relay publishes and deletes them.
CREATE TABLE outbox (
    id          BIGSERIAL PRIMARY KEY,
    topic       TEXT   NOT NULL,
    msg_key     TEXT   NOT NULL,
    payload     TEXT   NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);
CREATE INDEX outbox_by_lease ON outbox (lease_until, id);

CREATE TABLE deliveries (
    id                  TEXT   PRIMARY KEY,
    notification_id     TEXT   NOT NULL,
    user_id             TEXT   NOT NULL,
    channel             TEXT   NOT NULL,
    state               TEXT   NOT NULL,
    attempts            BIGINT NOT NULL DEFAULT 0,
    provider_message_id TEXT,
    last_error          TEXT,
    lease_token         TEXT,
    lease_until         BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX deliveries_by_notification ON deliveries (notification_id);

-- Every outcome reported for a delivery, once per state.
CREATE TABLE receipts (
    delivery_id         TEXT   NOT NULL,
    state               TEXT   NOT NULL,
    reason              TEXT,
    provider_message_id TEXT,
    at                  BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, state)
);

CREATE TABLE inbox (
    id              TEXT   PRIMARY KEY,
    user_id         TEXT   NOT NULL,
    notification_id TEXT   NOT NULL,
    category        TEXT   NOT NULL,
    title           TEXT   NOT NULL,
    body            TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    read_at         BIGINT
);
CREATE INDEX inbox_by_user ON inbox (user_id, created_at DESC);
CREATE INDEX inbox_unread_by_user ON inbox (user_id) WHERE read_at IS NULL;
