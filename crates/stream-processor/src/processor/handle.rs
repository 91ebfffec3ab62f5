//! [`ProcessorHandle`]: what the rest of the node sees of a running processor (offsets, pause,
//! failure, the erasure list), and the erasure requests it hands to the loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use foldhash::HashMap;

use crate::error::Result;

/// What the rest of the node can see of a running processor. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProcessorHandle {
    pub(super) inner: Arc<HandleInner>,
}

#[derive(Debug)]
pub(super) struct HandleInner {
    /// Committed (next-to-apply) offset per partition.
    pub(super) committed: Vec<AtomicU64>,
    /// Per partition, whether this node applies it.
    pub(super) owned: Vec<bool>,
    /// One bit per worker, set while its last attempt to apply a batch failed.
    pub(super) failing: AtomicU64,
    /// Set by an operator: the loop applies nothing until it is cleared.
    pub(super) paused: AtomicBool,
    /// Erasures waiting for the loop, which runs them between batches.
    pub(super) erasures: parking_lot::Mutex<Vec<ErasureRequest>>,
    /// The erasure list (keyed hash of a user id → erasure time), loaded from the state; the
    /// loop adds to it, ingest reads it.
    pub(super) erased: parking_lot::RwLock<HashMap<[u8; 32], i64>>,
    /// The key of the list's hashes.
    pub(super) erasure_key: [u8; 32],
    /// Wakes the loop for an erasure.
    pub(super) wake: tokio::sync::Notify,
}

/// A user erasure handed to the processor loop.
pub(super) struct ErasureRequest {
    pub(super) user_id: String,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<Erasure>>,
}

impl std::fmt::Debug for ErasureRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErasureRequest").finish_non_exhaustive()
    }
}

/// What an erasure removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Erasure {
    /// Events of the user found in the log and erased from it (or, on a log that cannot erase,
    /// left to the erasure list).
    pub log_events: usize,
    /// Of those, events the model had applied, whose contributions were taken back.
    pub applied_events: usize,
    /// Whether the user had state (counts, seen items, history).
    pub had_state: bool,
    /// Items whose popularity, counts and co-occurrence lists changed.
    pub items_adjusted: usize,
    /// Whether the log itself erased the events (false: the backend keeps history; replay and
    /// the processor skip them through the erasure list).
    pub log_erased: bool,
    /// Time of the erasure, ms since the Unix epoch: events of this user appended before it are
    /// never applied again.
    pub erased_ms: i64,
}

impl ProcessorHandle {
    pub(super) fn new(
        offsets: &[u64],
        owned: &[u32],
        erased: HashMap<[u8; 32], i64>,
        erasure_key: [u8; 32],
    ) -> ProcessorHandle {
        ProcessorHandle {
            inner: Arc::new(HandleInner {
                committed: offsets
                    .iter()
                    .map(|&offset| AtomicU64::new(offset))
                    .collect(),
                owned: (0..offsets.len() as u32)
                    .map(|partition| owned.contains(&partition))
                    .collect(),
                failing: AtomicU64::new(0),
                paused: AtomicBool::new(false),
                erasures: parking_lot::Mutex::new(Vec::new()),
                erased: parking_lot::RwLock::new(erased),
                erasure_key,
                wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The committed offsets, per partition.
    pub fn committed_offsets(&self) -> Vec<u64> {
        self.inner
            .committed
            .iter()
            .map(|offset| offset.load(Ordering::Acquire))
            .collect()
    }

    /// Whether this node applies `partition` (every partition unless the node was given some).
    pub fn owns(&self, partition: u32) -> bool {
        self.inner
            .owned
            .get(partition as usize)
            .copied()
            .unwrap_or(false)
    }

    /// The committed offsets for measuring lag against `ends`: a partition of another node
    /// counts as caught up (its owner reports its lag).
    pub fn lag_offsets(&self, ends: &[u64]) -> Vec<u64> {
        self.committed_offsets()
            .into_iter()
            .zip(ends)
            .enumerate()
            .map(|(partition, (committed, &end))| {
                if self.owns(partition as u32) {
                    committed
                } else {
                    end
                }
            })
            .collect()
    }

    /// Whether the processor's last batch failed (it retries).
    pub fn is_failing(&self) -> bool {
        self.inner.failing.load(Ordering::Acquire) != 0
    }

    /// Pauses or resumes the processor. Paused, it finishes the batch under way and then
    /// applies nothing: ingest goes on, the lag grows, and queries answer from the state as it
    /// was. For maintenance, and to check that lag alerts fire.
    pub fn set_paused(&self, paused: bool) {
        self.inner.paused.store(paused, Ordering::Release);
    }

    /// Whether an operator paused the processor.
    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::Acquire)
    }

    /// Erases a user (see [`Processor::erase`]); the loop runs it between two batches, also
    /// while paused. Resolves when the erasure is durable.
    ///
    /// [`Processor::erase`]: super::Processor::erase
    pub async fn erase_user(&self, user_id: &str) -> Result<Erasure> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.inner.erasures.lock().push(ErasureRequest {
            user_id: user_id.to_owned(),
            reply,
        });
        // The worker owning the user's partition runs it: wake every worker waiting now, or
        // the next one to wait.
        self.inner.wake.notify_waiters();
        self.inner.wake.notify_one();
        answer.await.map_err(|_| crate::Error::Stopped)?
    }
}

impl ProcessorHandle {
    /// How records about `user_id` name the user where its id must not appear (the audit log,
    /// an erasure's job): 32 hex digits of its keyed hash in the erasure list.
    pub fn subject(&self, user_id: &str) -> String {
        erasure_subject(&self.inner.erasure_key, user_id)
    }

    /// When `user_id` was erased, if it was: events of the user from before then are refused
    /// at ingest (a backfill of history) and never applied (a replay, a log that cannot erase).
    pub fn erased_at(&self, user_id: &str) -> Option<i64> {
        let erased = self.inner.erased.read();
        if erased.is_empty() {
            return None;
        }
        erased
            .get(&erasure_hash(&self.inner.erasure_key, user_id))
            .copied()
    }
}

/// 32 hex digits of [`erasure_hash`]: how the audit log and an erasure's job name a user.
pub fn erasure_subject(key: &[u8; 32], user_id: &str) -> String {
    erasure_hash(key, user_id)[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The keyed hash of a user id in the erasure list.
pub fn erasure_hash(key: &[u8; 32], user_id: &str) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(user_id.as_bytes());
    mac.finalize().into_bytes().into()
}
