-- Trending per genre over sliding windows: every minute, the ten items with the most positive
-- weight per genre over the last 30 minutes, from Marquee's event log on Fluvio.
--
-- UDFs: marquee_event (a log record as JSON), marquee_event_weight (Marquee's weight of an
-- event). The genre is the `genre` key of the event's context, which the sending app sets
-- (the catalogue is not in the event stream); events without one are left out.
-- Output: a Fluvio topic `marquee-trending-by-genre`, JSON rows.

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

CREATE TABLE trending_by_genre (
    genre TEXT,
    item_id TEXT,
    score DOUBLE,
    events BIGINT,
    window_end TIMESTAMP
) WITH (
    connector = 'fluvio',
    endpoint = 'localhost:9003',
    topic = 'marquee-trending-by-genre',
    type = 'sink',
    format = 'json'
);

CREATE VIEW weighted AS
SELECT
    extract_json_string(event, '$.context.genre') AS genre,
    extract_json_string(event, '$.item_id') AS item_id,
    marquee_event_weight(
        extract_json_string(event, '$.kind'),
        CAST(extract_json_string(event, '$.value') AS DOUBLE)
    ) AS weight
FROM (SELECT marquee_event(value) AS event FROM marquee_log)
WHERE event IS NOT NULL;

CREATE VIEW per_item AS
SELECT
    genre,
    item_id,
    sum(weight) AS score,
    count(*) AS events,
    hop(interval '1 minute', interval '30 minutes') AS window
FROM weighted
WHERE genre IS NOT NULL AND weight > 0
GROUP BY 1, 2, window;

INSERT INTO trending_by_genre
SELECT genre, item_id, score, events, window_end FROM (
    SELECT
        genre,
        item_id,
        score,
        events,
        window.end AS window_end,
        row_number() OVER (
            PARTITION BY window, genre
            ORDER BY score DESC
        ) AS rank
    FROM per_item
) WHERE rank <= 10;
