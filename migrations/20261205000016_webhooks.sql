-- Webhooks: endpoints told of incidents, signed as Standard Webhooks writes it, each
-- delivery an apalis job (queue `webhook-delivery`) queued in the transaction that writes
-- its event.

CREATE TABLE webhooks (
    id              uuid        PRIMARY KEY,
    url             text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    -- The event types it receives: 'incident.opened', 'incident.resolved'.
    events          text[]      NOT NULL CHECK (cardinality(events) > 0),
    -- `whsec_…`: the signing secret. Shown once, when the webhook is created or rotated.
    secret          text        NOT NULL,
    -- The secret before the last rotation, which signs beside the new one until
    -- previous_until, so that a receiver can change its secret without missing a delivery.
    previous_secret text,
    previous_until  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Which token created it (its name), as the audit names it.
    created_by      text        NOT NULL,
    -- Set when the receiver answered 410 Gone: nothing more is sent to it.
    disabled_at     timestamptz,
    disabled_reason text
);

-- Every attempt to deliver an event to a webhook, whatever came of it.
CREATE TABLE webhook_deliveries (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook     uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    -- incident_events.id: the delivery's `webhook-id`, the same on every attempt.
    event       uuid        NOT NULL,
    attempt     integer     NOT NULL CHECK (attempt > 0),
    at          timestamptz NOT NULL DEFAULT now(),
    -- The answer's HTTP status; NULL: none (refused, timed out, no such host).
    status      integer,
    duration_ms integer     NOT NULL,
    outcome     text        NOT NULL
        CHECK (outcome IN ('delivered', 'retrying', 'failed', 'gone', 'refused')),
    error       text,
    -- When the next attempt runs, for an outcome of 'retrying'.
    next_at     timestamptz
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook, id DESC);
