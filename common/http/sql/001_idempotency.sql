-- Idempotency-Key records of rt_http_server's routes (common/http/rt_http_idem_pg.c),
-- shared by every replica of a daemon so that a retry may reach any of them.
-- One row per (scope, key): a reservation while the key's first request
-- runs, then the answer it got. Times are unix milliseconds of retain's
-- clock (rt_clock), never now(): the replicas' clock is the one that
-- tests move.

CREATE TABLE http.idempotency (
    scope        text    NOT NULL,              -- '<server>:<principal>': clients never share keys
    key          text    NOT NULL,              -- the Idempotency-Key, 1 to 255 visible ASCII bytes
    fingerprint  bytea   NOT NULL,              -- SHA-256 of the method, path with query and body
    token        uuid    NOT NULL,              -- the reservation's owner
    done         boolean NOT NULL DEFAULT false, -- the answer is stored
    expires_ms   bigint  NOT NULL,              -- a reservation is taken over, an answer forgotten
    status       int,                           -- the answer's HTTP status (under 500)
    content_type text,                          -- its Content-Type, NULL when none
    headers      bytea,                         -- the header lines its handler added
    body         bytea,                         -- its body
    PRIMARY KEY (scope, key),
    CHECK (done = (status IS NOT NULL))
);

-- The store purges expired rows a bounded batch at a time, oldest first.
CREATE INDEX idempotency_expires ON http.idempotency (expires_ms);
