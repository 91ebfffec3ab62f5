-- A bot filter: users with more than 120 events in any minute (a person rates, clicks and
-- watches far slower) are written to the Fluvio topic `marquee-flagged-users`, one JSON row
-- per user and minute, for an operator or an automated erasure to act on.
--
-- UDFs: marquee_event (a log record as JSON), marquee_partition (the log partition, and so
-- the node, of the user: an operator of a partitioned deployment knows where to look).

CREATE TABLE marquee_log (
    value BYTEA NOT NULL
) WITH (
    connector = 'fluvio',
    endpoint = 'localhost:9003',
    topic = 'marquee-events',
    type = 'source',
    'source.offset' = 'latest',
    format = 'raw_bytes'
);

CREATE TABLE flagged_users (
    user_id TEXT,
    partition BIGINT,
    events BIGINT,
    items BIGINT,
    window_start TIMESTAMP
) WITH (
    connector = 'fluvio',
    endpoint = 'localhost:9003',
    topic = 'marquee-flagged-users',
    type = 'sink',
    format = 'json'
);

INSERT INTO flagged_users
SELECT user_id, marquee_partition(user_id, 4) AS partition, events, items, window.start
FROM (
    SELECT
        extract_json_string(event, '$.user_id') AS user_id,
        count(*) AS events,
        count(DISTINCT extract_json_string(event, '$.item_id')) AS items,
        tumble(interval '1 minute') AS window
    FROM (SELECT marquee_event(value) AS event FROM marquee_log)
    WHERE event IS NOT NULL
    GROUP BY 1, window
)
WHERE events > 120;
