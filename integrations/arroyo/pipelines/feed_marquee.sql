-- Arroyo feeding Marquee: plays from another system (JSON on the Fluvio topic `player-plays`)
-- become Marquee watch events on the topic `marquee-intake`, keyed by user, which
-- `marquee intake` reads and sends to a node's ingest (docs/INTEGRATIONS.md).
--
-- The event id is derived from the source's own play id, never generated here: Arroyo's sink
-- may write a record again after a restart from a checkpoint, and `marquee intake` may send
-- one again after a crash, and Marquee applies each `event_id` once (its de-duplication
-- window, 7 days by default). A fresh id per emission would count a replayed play twice.

CREATE TABLE plays (
    play_id TEXT NOT NULL,
    account TEXT NOT NULL,
    title_id TEXT NOT NULL,
    seconds_watched DOUBLE NOT NULL,
    runtime_seconds DOUBLE NOT NULL,
    finished_at TIMESTAMP NOT NULL
) WITH (
    connector = 'fluvio',
    endpoint = 'localhost:9003',
    topic = 'player-plays',
    type = 'source',
    'source.offset' = 'earliest',
    format = 'json'
);

-- Marquee's intake format: one event per record, as `POST /v1/events` takes it.
CREATE TABLE marquee_intake (
    event_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value DOUBLE,
    timestamp BIGINT NOT NULL
) WITH (
    connector = 'fluvio',
    endpoint = 'localhost:9003',
    topic = 'marquee-intake',
    type = 'sink',
    format = 'json'
);

INSERT INTO marquee_intake
SELECT
    concat('plays-', play_id) AS event_id,
    account AS user_id,
    title_id AS item_id,
    'watch' AS kind,
    least(1.0, greatest(0.0, seconds_watched / runtime_seconds)) AS value,
    CAST(extract(epoch FROM finished_at) * 1000 AS BIGINT) AS timestamp
FROM plays
WHERE runtime_seconds > 0;
