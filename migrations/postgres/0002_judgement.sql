-- The router's judgement: categories, durable timers, quiet-hour and cap
-- deferrals, digests, topics and the decision trace.

-- Set by DELETE /v1/notifications/{id}: nothing more of it is sent.
ALTER TABLE notifications ADD COLUMN cancelled_at BIGINT;

-- When a deferred delivery is due; NULL when it is not waiting.
ALTER TABLE deliveries ADD COLUMN not_before BIGINT;
-- The rules that decided it, one JSON object per line, appended in order.
ALTER TABLE deliveries ADD COLUMN trace TEXT NOT NULL DEFAULT '';
-- For a notification grouped into a digest: the digest's delivery.
ALTER TABLE deliveries ADD COLUMN digest_id TEXT;
CREATE INDEX deliveries_by_digest ON deliveries (digest_id) WHERE digest_id IS NOT NULL;

-- Operators' rules per category (CategoryPolicy as JSON).
CREATE TABLE categories (
    name       TEXT   PRIMARY KEY,
    policy     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- "Do this at due_at": deferred deliveries, retries, digest windows,
-- escalations, topic expansion. A runner leases due rows like a worker
-- claims deliveries, so one fires once however many runners there are, and
-- one whose runner died fires again when its lease ends.
CREATE TABLE timers (
    id          TEXT   PRIMARY KEY,
    kind        TEXT   NOT NULL,
    subject     TEXT   NOT NULL,
    due_at      BIGINT NOT NULL,
    payload     TEXT   NOT NULL DEFAULT '{}',
    lease_token TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    fired       BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);
CREATE INDEX timers_by_due ON timers (due_at);

-- Sends and reserved send slots per (user, category, channel), for caps.
CREATE TABLE cap_slots (
    delivery_id TEXT   PRIMARY KEY,
    user_id     TEXT   NOT NULL,
    category    TEXT   NOT NULL,
    channel     TEXT   NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX cap_slots_by_scope ON cap_slots (user_id, category, channel, at);

-- One row per user whose caps were counted: routers lock it for the length
-- of a decision, so two replicas cannot both take the last slot.
CREATE TABLE cap_locks (
    user_id TEXT   PRIMARY KEY,
    version BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE topics (
    name        TEXT   PRIMARY KEY,
    description TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE topic_subscribers (
    topic      TEXT   NOT NULL REFERENCES topics (name) ON DELETE CASCADE,
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (topic, user_id)
);

-- Digests: notifications collected for one user and channel, sent as one
-- delivery (whose id is the digest's) when the window closes.
CREATE TABLE digests (
    id         TEXT   PRIMARY KEY,
    -- The delivery that carries the digest: what members' digest_id names.
    carrier    TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    channel    TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    digest_key TEXT   NOT NULL,
    template   TEXT,
    state      TEXT   NOT NULL,
    members    BIGINT NOT NULL DEFAULT 0,
    closes_at  BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX digests_one_open ON digests (user_id, channel, kind, digest_key) WHERE state = 'open';
CREATE UNIQUE INDEX digests_by_carrier ON digests (carrier);
