//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: the holder renews the lease
//! every few seconds; another replica takes it over only once it has not been renewed for its duration.
//! Optimistic concurrency (the Lease's resourceVersion) makes concurrent takeovers fail for all but one.

use super::Error;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use std::time::Duration;

/// What a replica does with the lease, given what it holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseStep {
    /// The lease is free or expired: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it and renews it.
    Wait { holder: String },
}

/// Decides the next step from the lease's holder and last renewal (ms since the epoch).
pub fn decide(holder: Option<&str>, renewed_ms: Option<i64>, duration_s: i32, me: &str, now_ms: i64) -> LeaseStep {
    match holder {
        Some(h) if h == me => LeaseStep::Renew,
        Some(h) if !h.is_empty() => {
            let expired = renewed_ms.is_none_or(|r| now_ms > r + i64::from(duration_s) * 1000);
            if expired {
                LeaseStep::Acquire
            } else {
                LeaseStep::Wait { holder: h.to_owned() }
            }
        }
        _ => LeaseStep::Acquire,
    }
}

/// A Lease as read: who holds it and since when it was last renewed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseView {
    pub holder: Option<String>,
    pub renewed_ms: Option<i64>,
    pub duration_s: i32,
}

impl LeaseView {
    /// Whether the holder renewed it within its duration (a free lease is never live).
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.holder.is_some()
            && self
                .renewed_ms
                .is_some_and(|r| now_ms <= r + i64::from(self.duration_s) * 1000)
    }
}

pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaderElection {
    pub fn new(kube: kube::Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        LeaderElection {
            api: Api::namespaced(kube, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
        }
    }

    fn renew_period(&self) -> Duration {
        (self.duration / 3).max(Duration::from_millis(500))
    }

    /// Returns once this replica holds the lease.
    pub async fn acquire(&self) -> Result<(), Error> {
        loop {
            match self.try_step().await? {
                LeaseStep::Acquire | LeaseStep::Renew => return Ok(()),
                LeaseStep::Wait { holder } => {
                    tracing::debug!(holder, "standing by: another replica leads");
                }
            }
            tokio::time::sleep(self.renew_period()).await;
        }
    }

    /// Renews the lease until it is lost (another replica took it, or renewals failed for its duration);
    /// then returns why.
    pub async fn hold(&self) -> Error {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew_period()).await;
            match self.try_step().await {
                Ok(LeaseStep::Renew | LeaseStep::Acquire) => last_renewal = tokio::time::Instant::now(),
                Ok(LeaseStep::Wait { holder }) => {
                    return Error::Config(format!("lost the leader lease {} to {holder}", self.name));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew the leader lease");
                    if last_renewal.elapsed() >= self.duration {
                        return Error::Config(format!(
                            "could not renew the leader lease {} for {:?}: {e}",
                            self.name, self.duration
                        ));
                    }
                }
            }
        }
    }

    /// Whether this replica holds the lease right now, read from the API server (not from memory): the fence
    /// before every act of a reset, so that a replica that was paused past its lease (a GC pause, a frozen
    /// VM, blocked renewals) does not act after another replica took over.
    pub async fn still_holds(&self) -> Result<bool, Error> {
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            return Ok(false);
        };
        let spec = lease.spec.unwrap_or_default();
        let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
        let duration_s = spec
            .lease_duration_seconds
            .unwrap_or(self.duration.as_secs().max(1) as i32);
        let step = decide(
            spec.holder_identity.as_deref(),
            spec.renew_time.as_ref().map(|t| t.0.as_millisecond()),
            duration_s,
            &self.identity,
            now_ms,
        );
        let fresh = spec
            .renew_time
            .as_ref()
            .is_some_and(|t| now_ms <= t.0.as_millisecond() + i64::from(duration_s) * 1000);
        Ok(step == LeaseStep::Renew && fresh)
    }

    /// Gives the lease up (on graceful shutdown), so that another replica takes over at once.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                spec.holder_identity = None;
                spec.renew_time = None;
                let _ = self.api.replace(&self.name, &PostParams::default(), &lease).await;
            }
        }
    }

    /// The lease as the API server has it, without writing: its holder (None when free) and last renewal.
    pub async fn observe(&self) -> Result<LeaseView, Error> {
        let spec = self
            .api
            .get_opt(&self.name)
            .await?
            .and_then(|l| l.spec)
            .unwrap_or_default();
        Ok(LeaseView {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renewed_ms: spec.renew_time.map(|t| t.0.as_millisecond()),
            duration_s: spec
                .lease_duration_seconds
                .unwrap_or(self.duration.as_secs().max(1) as i32),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// One round: read the lease and acquire or renew it if we may. Returns what was decided; a lost race
    /// (409 Conflict) reads as Wait.
    pub async fn try_step(&self) -> Result<LeaseStep, Error> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let duration_s = self.duration.as_secs().max(1) as i32;
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_s),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(LeaseStep::Acquire),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(LeaseStep::Wait {
                    holder: "(another replica)".into(),
                }),
                Err(e) => Err(e.into()),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let step = decide(
            spec.holder_identity.as_deref(),
            spec.renew_time.as_ref().map(|t| t.0.as_millisecond()),
            spec.lease_duration_seconds.unwrap_or(duration_s),
            &self.identity,
            now.as_millisecond(),
        );
        match &step {
            LeaseStep::Wait { .. } => return Ok(step),
            LeaseStep::Acquire => {
                spec.holder_identity = Some(self.identity.clone());
                spec.acquire_time = Some(MicroTime(now));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                tracing::info!(lease = self.name, identity = self.identity, "acquired the lease");
            }
            LeaseStep::Renew => {}
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(duration_s);
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(step),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(LeaseStep::Wait {
                holder: "(another replica)".into(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_lease_is_acquired() {
        assert_eq!(decide(None, None, 15, "a", 0), LeaseStep::Acquire);
        assert_eq!(decide(Some(""), None, 15, "a", 0), LeaseStep::Acquire);
    }

    #[test]
    fn our_own_lease_is_renewed() {
        assert_eq!(decide(Some("a"), Some(0), 15, "a", 100_000), LeaseStep::Renew);
    }

    #[test]
    fn a_fresh_foreign_lease_is_respected_and_an_expired_one_taken() {
        assert_eq!(
            decide(Some("b"), Some(10_000), 15, "a", 20_000),
            LeaseStep::Wait { holder: "b".into() }
        );
        assert_eq!(decide(Some("b"), Some(10_000), 15, "a", 25_001), LeaseStep::Acquire);
    }
}
