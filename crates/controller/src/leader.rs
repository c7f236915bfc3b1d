//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! kube 5 has no election helper, so this is the client-go protocol in small:
//! every `retry_period` the replica reads the Lease; it renews it when it
//! holds it, takes it when it is free or when the holder's record has not
//! changed for `leaseDurationSeconds` *of local time* (clocks of different
//! machines are never compared), and every write carries the Lease's
//! `resourceVersion`, so two candidates cannot both win.
//!
//! Leadership is a deadline, not a flag: [`Leadership::is_leader`] is true
//! only until `renew_deadline` after the last successful renewal. That
//! deadline is shorter than the lease duration, so a replica that cannot
//! reach the API server stops writing before anyone else may start — even
//! if this task is itself stuck.

use crate::error::ControllerError;
use crate::metrics::Metrics;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Timing of the election.
#[derive(Clone, Debug)]
pub struct LeaseTiming {
    /// How long a holder's record stays valid without renewal.
    pub lease_duration: Duration,
    /// A leader that could not renew for this long steps down. Shorter than
    /// `lease_duration`.
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Whether this replica may write, shared by every writer.
#[derive(Debug)]
pub(crate) struct Leadership {
    valid_until: Mutex<Option<Instant>>,
    changes: watch::Sender<bool>,
}

impl Leadership {
    pub fn new() -> Arc<Leadership> {
        Arc::new(Leadership {
            valid_until: Mutex::new(None),
            changes: watch::channel(false).0,
        })
    }

    /// A replica without election (tests, single-replica installs) leads
    /// forever.
    pub fn always() -> Arc<Leadership> {
        let l = Leadership::new();
        l.extend(Duration::from_secs(100 * 365 * 24 * 3600));
        l
    }

    pub fn is_leader(&self) -> bool {
        let until = *self
            .valid_until
            .lock()
            .expect("leadership mutex is never held across a panic");
        matches!(until, Some(t) if Instant::now() < t)
    }

    /// Fires when leadership is gained or lost (as far as the election task
    /// knows; the deadline in [`Self::is_leader`] is the authority).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.changes.subscribe()
    }

    fn extend(&self, by: Duration) {
        *self
            .valid_until
            .lock()
            .expect("leadership mutex is never held across a panic") = Some(Instant::now() + by);
        self.changes
            .send_if_modified(|v| !std::mem::replace(v, true));
    }

    fn step_down(&self) {
        *self
            .valid_until
            .lock()
            .expect("leadership mutex is never held across a panic") = None;
        self.changes
            .send_if_modified(|v| std::mem::replace(v, false));
    }
}

/// The holder's record as last seen, and when it was first seen unchanged.
struct Observed {
    record: (Option<String>, Option<String>, Option<i32>),
    since: Instant,
}

pub(crate) struct Elector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timing: LeaseTiming,
    leadership: Arc<Leadership>,
    metrics: Arc<Metrics>,
    observed: Option<Observed>,
}

impl Elector {
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timing: LeaseTiming,
        leadership: Arc<Leadership>,
        metrics: Arc<Metrics>,
    ) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            leadership,
            metrics,
            observed: None,
        }
    }

    /// Runs the election until `stop` fires, then gives the lease up so a
    /// standby takes over without waiting for it to expire.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let attempt = tokio::time::timeout(self.timing.renew_deadline, self.attempt()).await;
            match attempt {
                Ok(Ok(true)) => {
                    if !self.leadership.is_leader() {
                        tracing::info!(identity = %self.identity, lease = %self.name, "became leader");
                    }
                    self.leadership.extend(self.timing.renew_deadline);
                }
                Ok(Ok(false)) => {
                    if self.leadership.is_leader() {
                        tracing::warn!(identity = %self.identity, "lease taken by another replica; stepping down");
                    }
                    self.leadership.step_down();
                }
                Ok(Err(e)) => {
                    self.metrics.error(e.kind());
                    tracing::warn!(error = %e, "lease renewal failed");
                }
                Err(_) => {
                    self.metrics.error("lease_timeout");
                    tracing::warn!("lease renewal timed out");
                }
            }
            // The deadline may have passed during failed attempts.
            self.metrics
                .leader
                .set(i64::from(self.leadership.is_leader()));
            tokio::select! {
                _ = tokio::time::sleep(self.timing.retry_period) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if self.leadership.is_leader() {
            self.leadership.step_down();
            self.metrics.leader.set(0);
            if let Err(e) = self.release().await {
                tracing::warn!(error = %e, "releasing the lease failed; a standby takes over when it expires");
            }
        }
    }

    fn lease_err(&self, source: kube::Error) -> ControllerError {
        ControllerError::Lease {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.timing.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// One read and at most one write. `Ok(true)`: this replica holds the
    /// lease now.
    async fn attempt(&mut self) -> Result<bool, ControllerError> {
        let now = MicroTime(jiff::Timestamp::now());
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.lease_err(e))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.duration_secs()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            self.metrics.write("lease");
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if crate::error::status_code(&e) == Some(409) => Ok(false),
                Err(e) => Err(self.lease_err(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.identity.as_str());
        if !mine && holder.is_some() {
            let record = (
                holder.clone(),
                spec.renew_time.as_ref().map(|t| t.0.to_string()),
                spec.lease_duration_seconds,
            );
            let changed = self.observed.as_ref().is_none_or(|o| o.record != record);
            if changed {
                self.observed = Some(Observed {
                    record,
                    since: Instant::now(),
                });
                return Ok(false);
            }
            let held_for = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(1).max(1)).unwrap_or(1),
            );
            let since = self
                .observed
                .as_ref()
                .map(|o| o.since)
                .unwrap_or_else(Instant::now);
            if since.elapsed() < held_for {
                return Ok(false);
            }
            tracing::info!(previous = ?holder, "lease expired; taking over");
        }
        let mut new_spec = spec.clone();
        if !mine {
            new_spec.acquire_time = Some(now.clone());
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        new_spec.holder_identity = Some(self.identity.clone());
        new_spec.lease_duration_seconds = Some(self.duration_secs());
        new_spec.renew_time = Some(now);
        lease.spec = Some(new_spec);
        lease.metadata.managed_fields = None;
        self.metrics.write("lease");
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.observed = None;
                Ok(true)
            }
            // Losing a race to take the lease is an answer; a conflict on
            // our own renewal is retried until the renew deadline.
            Err(e) if !mine && crate::error::status_code(&e) == Some(409) => Ok(false),
            Err(e) => Err(self.lease_err(e)),
        }
    }

    async fn release(&self) -> Result<(), ControllerError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.lease_err(e))?
        else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        lease.spec = Some(spec);
        lease.metadata.managed_fields = None;
        self.metrics.write("lease");
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| self.lease_err(e))?;
        Ok(())
    }
}
