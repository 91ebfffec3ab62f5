//! Long admin operations as jobs: a backup or an erasure runs on a task of its own, which the request that
//! started it only waits for. A client that asks `Prefer: respond-async` gets `202 Accepted`
//! with the job (`Location: /v1/admin/jobs/{id}`) at once; one whose operation is still running
//! when most of the request timeout has passed gets the same instead of a timeout, and the
//! operation goes on to its end; `GET /v1/admin/jobs/{id}` says how it ended. The same operation asked again while it
//! runs (a client retrying after a timeout) joins the running job instead of starting a second
//! one that would collide with it.
//!
//! Jobs are kept in memory, the last [`KEPT`] of them: a job is a handle on an operation whose
//! result is durable elsewhere (the backup's directory and manifest; the erasure journal), not
//! a record of its own. An erasure's job is polled at `/v1/erasures/{id}` (the `users` scope
//! that erases), a backup's at `/v1/admin/jobs/{id}`.
//!
//! An export's job is polled at `/v1/exports/{id}` (the `users` scope that exports), the one
//! place that shows its result: the jobs list and `/v1/admin/jobs/{id}` say only how it went,
//! since the result is the user's data. An erasure of the user drops the results of their
//! exports ([`Jobs::forget_exports`]), so none outlives the erasure in memory.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::error::ApiError;

/// Jobs kept: past this many, the oldest that ended are dropped.
pub const KEPT: usize = 100;

/// How an operation ended: its answer, or the error a synchronous answer would have had.
#[derive(Debug, Clone)]
enum Outcome {
    Succeeded(Value),
    Failed {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
}

/// One operation and how it is going.
#[derive(Debug)]
pub struct Job {
    id: String,
    kind: &'static str,
    target: String,
    started_ms: i64,
    ended: watch::Sender<Option<(i64, Outcome)>>,
}

/// What `GET /v1/admin/jobs/{id}` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    /// `backup`, `erasure` or `export`.
    pub kind: &'static str,
    /// What it works on: the backup's directory, or the erased or exported user's keyed hash
    /// (32 hex digits, as in the audit log; never the id).
    pub target: String,
    /// `running`, `succeeded` or `failed`.
    pub status: &'static str,
    pub started_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
    /// The answer the request would have had (a backup's directory and manifest; an export's
    /// data, at `/v1/exports/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why it failed: the `{status, code, message}` of the error the request would have had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Where to ask again.
    pub url: String,
}

impl Job {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its state now; an export's result only when `reveal`.
    pub fn view(&self, reveal: bool) -> JobView {
        let ended = self.ended.borrow().clone();
        let (status, finished_ms, result, error) = match ended {
            None => ("running", None, None, None),
            Some((at, Outcome::Succeeded(value))) => {
                let shown = (reveal || self.kind != "export").then_some(value);
                ("succeeded", Some(at), shown, None)
            }
            Some((
                at,
                Outcome::Failed {
                    status,
                    code,
                    message,
                },
            )) => (
                "failed",
                Some(at),
                None,
                Some(serde_json::json!({
                    "status": status.as_u16(),
                    "code": code,
                    "message": message,
                })),
            ),
        };
        JobView {
            id: self.id.clone(),
            kind: self.kind,
            target: self.target.clone(),
            status,
            started_ms: self.started_ms,
            finished_ms,
            result,
            error,
            url: match self.kind {
                // A `users` key erases, and polls where its scope reaches.
                "erasure" => format!("/v1/erasures/{}", self.id),
                "export" => format!("/v1/exports/{}", self.id),
                _ => format!("/v1/admin/jobs/{}", self.id),
            },
        }
    }

    /// Waits up to `limit` for the end: `Some` with the answer (or the error) the request would
    /// have had, `None` while it still runs.
    pub async fn wait(&self, limit: Duration) -> Option<Result<Value, ApiError>> {
        let mut ended = self.ended.subscribe();
        let outcome = match tokio::time::timeout(limit, ended.wait_for(Option::is_some)).await {
            Ok(Ok(seen)) => seen.clone()?.1,
            _ => return None,
        };
        Some(match outcome {
            Outcome::Succeeded(value) => Ok(value),
            Outcome::Failed {
                status,
                code,
                message,
            } => Err(ApiError::Replayed {
                status,
                code,
                message,
            }),
        })
    }
}

/// The node's jobs. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Jobs {
    inner: Arc<Mutex<Listed>>,
}

#[derive(Debug, Default)]
struct Listed {
    next: u64,
    jobs: VecDeque<Arc<Job>>,
}

impl Jobs {
    /// Starts `work` as a job of `kind` on `target`, on a task of its own that runs to its end
    /// whatever becomes of the request; or, when the same operation is running, that job.
    pub fn start<F>(&self, kind: &'static str, target: String, work: F) -> Arc<Job>
    where
        F: Future<Output = Result<Value, ApiError>> + Send + 'static,
    {
        let mut listed = self.inner.lock();
        if let Some(running) = listed
            .jobs
            .iter()
            .find(|job| job.kind == kind && job.target == target && job.ended.borrow().is_none())
        {
            return Arc::clone(running);
        }
        listed.next += 1;
        let job = Arc::new(Job {
            id: format!("{kind}-{}", listed.next),
            kind,
            target,
            started_ms: marquee_schemas::now_ms(),
            ended: watch::Sender::new(None),
        });
        listed.jobs.push_front(Arc::clone(&job));
        // Past the limit, the oldest jobs that ended go; running ones stay.
        while listed.jobs.len() > KEPT {
            match listed
                .jobs
                .iter()
                .rposition(|job| job.ended.borrow().is_some())
            {
                Some(at) => {
                    listed.jobs.remove(at);
                }
                None => break,
            }
        }
        drop(listed);
        let running = Arc::clone(&job);
        tokio::spawn(async move {
            let outcome = match work.await {
                Ok(value) => Outcome::Succeeded(value),
                Err(error) => {
                    let (status, code) = error.status_and_code();
                    Outcome::Failed {
                        status,
                        code,
                        message: error.to_string(),
                    }
                }
            };
            running
                .ended
                .send_replace(Some((marquee_schemas::now_ms(), outcome)));
        });
        job
    }

    /// A job by id, while it is kept (an export's without its result).
    pub fn get(&self, id: &str) -> Option<JobView> {
        self.view_of(id, false)
    }

    fn view_of(&self, id: &str, reveal: bool) -> Option<JobView> {
        let listed = self.inner.lock();
        listed
            .jobs
            .iter()
            .find(|job| job.id == id)
            .map(|job| job.view(reveal))
    }

    /// The job `id`, of `kind` when one is named (and then with its result, an export's
    /// included); 404 naming `id` otherwise.
    pub fn find(&self, id: &str, kind: Option<&str>) -> Result<JobView, ApiError> {
        self.view_of(id, kind.is_some())
            .filter(|job| kind.is_none_or(|kind| job.kind == kind))
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "id: no {}job {id:?} (the node keeps the last {KEPT} jobs, until it stops)",
                    kind.map(|kind| format!("{kind} ")).unwrap_or_default()
                ))
            })
    }

    /// Every job kept, newest first.
    pub fn list(&self) -> Vec<JobView> {
        self.inner
            .lock()
            .jobs
            .iter()
            .map(|job| job.view(false))
            .collect()
    }

    /// Drops the results of the ended exports of the user whose keyed hash is `target` (the
    /// user was erased): they answer 410 from then on.
    pub fn forget_exports(&self, target: &str) {
        let listed = self.inner.lock();
        for job in &listed.jobs {
            if job.kind == "export" && job.target == target {
                job.ended.send_if_modified(|ended| match ended {
                    Some((at, Outcome::Succeeded(_))) => {
                        *ended = Some((
                            *at,
                            Outcome::Failed {
                                status: StatusCode::GONE,
                                code: "gone",
                                message: "the user was erased after this export: what it \
                                          held is gone"
                                    .into(),
                            },
                        ));
                        true
                    }
                    _ => false,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_runs_on_after_its_wait_and_a_retry_joins_it() {
        let jobs = Jobs::default();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let job = jobs.start("backup", "b1".into(), async move {
            let _ = released.await;
            Ok(serde_json::json!({"dir": "b1"}))
        });
        assert!(job.wait(Duration::from_millis(20)).await.is_none());
        assert_eq!(jobs.get(job.id()).unwrap().status, "running");
        let again = jobs.start("backup", "b1".into(), async { unreachable!() });
        assert_eq!(
            again.id(),
            job.id(),
            "the same operation joins the running job"
        );
        let other = jobs.start("backup", "b2".into(), async {
            Err(ApiError::Unprocessable {
                message: "dir: exists".into(),
            })
        });
        release.send(()).unwrap();
        let answer = job.wait(Duration::from_secs(10)).await.unwrap().unwrap();
        assert_eq!(answer["dir"], "b1");
        let view = jobs.get(job.id()).unwrap();
        assert_eq!(
            (view.status, view.result.unwrap()["dir"].clone()),
            ("succeeded", "b1".into())
        );
        let failed = other
            .wait(Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            failed.status_and_code(),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
        );
        assert_eq!(
            jobs.get(other.id()).unwrap().error.unwrap()["message"],
            "dir: exists"
        );
        assert_eq!(jobs.list().len(), 2);
        assert!(jobs.get("backup-99").is_none());
    }

    #[tokio::test]
    async fn an_export_shows_its_data_on_its_own_route_only_until_its_user_is_erased() {
        let jobs = Jobs::default();
        let export = jobs.start("export", "hash-a".into(), async {
            Ok(serde_json::json!({"events": ["e1"]}))
        });
        let other = jobs.start("export", "hash-b".into(), async {
            Ok(serde_json::json!({"events": ["e2"]}))
        });
        for job in [&export, &other] {
            job.wait(Duration::from_secs(10)).await.unwrap().unwrap();
        }
        let id = export.id();
        assert!(jobs.get(id).unwrap().result.is_none());
        assert!(jobs.list().iter().all(|job| job.result.is_none()));
        assert_eq!(
            jobs.find(id, Some("export")).unwrap().result.unwrap()["events"][0],
            "e1"
        );
        assert!(jobs.find(id, Some("erasure")).is_err());
        jobs.forget_exports("hash-a");
        let gone = jobs.find(id, Some("export")).unwrap();
        assert_eq!((gone.status, gone.result), ("failed", None));
        assert_eq!(gone.error.unwrap()["status"], 410);
        let kept = jobs.find(other.id(), Some("export")).unwrap();
        assert_eq!(
            kept.result.unwrap()["events"][0],
            "e2",
            "another user's stays"
        );
    }
}
