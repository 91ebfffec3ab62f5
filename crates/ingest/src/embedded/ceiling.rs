//! The storage ceiling of durable appends, for the ingest benchmark: the embedded log's writes
//! without the log around them.

use std::path::Path;

use marquee_schemas::{Event, now_ms};
use rocksdb::{ColumnFamilyDescriptor, DB, WriteBatch, WriteOptions};

use super::{EVENTS_CF, db_options, events_cf_options, place};
use crate::error::Result;

/// The storage ceiling of durable appends, for the ingest benchmark: writes `batches` to a new
/// log at `path` (the log's column family options) as raw RocksDB write batches, one synced
/// write per batch with the keys and records the writer makes, from `threads` threads at once
/// (RocksDB joins concurrent synced writes into one `fsync`, as the writer's group commit
/// does). The records are encoded before the clock starts; the queue, HTTP and decoding are
/// left out. Returns the seconds the writes took.
pub fn write_ceiling(
    path: impl AsRef<Path>,
    partitions: u32,
    batches: &[Vec<Event>],
    threads: usize,
) -> Result<f64> {
    let descriptors = vec![ColumnFamilyDescriptor::new(EVENTS_CF, events_cf_options())];
    let db = DB::open_cf_descriptors(&db_options(), path.as_ref(), descriptors)?;
    let cf = db
        .cf_handle(EVENTS_CF)
        .expect("events column family exists");
    let append_ms = now_ms();
    let mut next = vec![0u64; partitions as usize];
    let threads = threads.max(1);
    let mut lanes: Vec<Vec<WriteBatch>> = (0..threads).map(|_| Vec::new()).collect();
    for (at, events) in batches.iter().enumerate() {
        let mut batch = WriteBatch::default();
        for event in events {
            let (_, key, bytes) = place(event, partitions, &mut next, append_ms, None)?;
            batch.put_cf(&cf, key, bytes);
        }
        lanes[at % threads].push(batch);
    }
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        let writers: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                let (db, sync) = (&db, &sync);
                scope.spawn(move || -> Result<()> {
                    for batch in lane {
                        db.write_opt(batch, sync)?;
                    }
                    Ok(())
                })
            })
            .collect();
        writers
            .into_iter()
            .try_for_each(|writer| writer.join().expect("a ceiling writer panicked"))
    })?;
    Ok(started.elapsed().as_secs_f64())
}
