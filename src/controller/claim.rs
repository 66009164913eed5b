//! One owner per workload: a `WorkloadClaim` object per workload (named after its kind and name), held by
//! the OffsetReset that may scale it. The claim records the workload's replica count as the first holder
//! found it (what every later holder restores), and both a second reset and the ConsumerGroup lag scaler
//! respect it. Taking it is a create (the name is the mutex) or, for a stale claim, a replace at its
//! resourceVersion; letting go is a delete at its resourceVersion — so two resets racing for one workload
//! cannot both hold it.

use super::Error;
use crate::api::OffsetReset;
use crate::api::claim::{ClaimHolder, ClaimedWorkload, WorkloadClaim as Claim, WorkloadClaimSpec};
use crate::api::reset::ResetPhase;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, Preconditions};

/// Who holds a workload's claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimView {
    Free,
    /// Held by the running OffsetReset `name` (uid `uid`).
    Held {
        uid: String,
        name: String,
    },
    /// Held by a reset that no longer runs (deleted without its finalizer, or finished): free to take over,
    /// keeping the replica count it recorded.
    Stale,
}

/// The claim of one workload.
pub struct WorkloadClaim {
    api: Api<Claim>,
    resets: Api<OffsetReset>,
    workload: ClaimedWorkload,
    pub object_name: String,
}

/// `<kind>-<name>` (kind lowercased), shortened with a hash when that would exceed 253 characters.
pub fn claim_name(kind: &str, name: &str) -> String {
    let full = format!("{}-{}", kind.to_ascii_lowercase(), name);
    if full.len() <= 253 {
        return full;
    }
    format!("{}-{:016x}", &full[..200], stable_hash(full.as_bytes()))
}

impl WorkloadClaim {
    pub fn new(kube: &kube::Client, namespace: &str, api_version: &str, kind: &str, name: &str) -> WorkloadClaim {
        WorkloadClaim {
            api: Api::namespaced(kube.clone(), namespace),
            resets: Api::namespaced(kube.clone(), namespace),
            workload: ClaimedWorkload {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
                name: name.to_owned(),
            },
            object_name: claim_name(kind, name),
        }
    }

    /// Who holds the claim now. A holder whose OffsetReset is gone, has another uid, or has finished is stale.
    pub async fn view(&self) -> Result<ClaimView, Error> {
        let Some(claim) = self.api.get_opt(&self.object_name).await? else {
            return Ok(ClaimView::Free);
        };
        let holder = claim.spec.holder;
        let running = match self.resets.get_opt(&holder.name).await? {
            Some(reset) => {
                reset.uid().as_deref() == Some(holder.uid.as_str())
                    && !matches!(
                        reset.status.as_ref().map(|s| s.phase),
                        Some(ResetPhase::Succeeded | ResetPhase::Failed)
                    )
            }
            None => false,
        };
        Ok(if running {
            ClaimView::Held {
                uid: holder.uid,
                name: holder.name,
            }
        } else {
            ClaimView::Stale
        })
    }

    /// Takes the claim for the reset `name`/`uid`, recording `current_replicas` as the original count unless
    /// an earlier holder recorded one (which is then kept: it is the count before anyone touched the
    /// workload). Returns the original count the claim records. Fails with 409 Conflict when another reset
    /// took it first.
    pub async fn acquire(&self, uid: &str, name: &str, current_replicas: i32) -> Result<i32, Error> {
        let holder = ClaimHolder {
            name: name.to_owned(),
            uid: uid.to_owned(),
        };
        match self.api.get_opt(&self.object_name).await? {
            None => {
                let claim = self.object(holder, current_replicas, None);
                self.api.create(&PostParams::default(), &claim).await?;
                Ok(current_replicas)
            }
            Some(existing) if existing.spec.holder.uid == uid => Ok(existing.spec.original_replicas),
            Some(existing) => {
                // Only a stale claim is taken over (the caller checked); the resourceVersion keeps it so.
                let original = existing.spec.original_replicas;
                let claim = self.object(holder, original, existing.resource_version());
                self.api
                    .replace(&self.object_name, &PostParams::default(), &claim)
                    .await?;
                Ok(original)
            }
        }
    }

    /// Lets go of the claim if `uid` holds it (a no-op otherwise, and when it is gone already).
    pub async fn release(&self, uid: &str) -> Result<(), Error> {
        let Some(claim) = self.api.get_opt(&self.object_name).await? else {
            return Ok(());
        };
        if claim.spec.holder.uid != uid {
            return Ok(());
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: claim.resource_version(),
                uid: claim.uid(),
            }),
            ..Default::default()
        };
        match self.api.delete(&self.object_name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn object(&self, holder: ClaimHolder, original: i32, resource_version: Option<String>) -> Claim {
        Claim {
            metadata: ObjectMeta {
                name: Some(self.object_name.clone()),
                resource_version,
                ..Default::default()
            },
            spec: WorkloadClaimSpec {
                workload: self.workload.clone(),
                holder,
                original_replicas: original,
            },
        }
    }
}

/// FNV-1a: the same value for the same bytes in every build and process, unlike std's hasher (names and
/// ledger entries are compared across operator versions).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_names_name_the_workload_and_stay_within_the_limit() {
        assert_eq!(claim_name("Deployment", "consumers"), "deployment-consumers");
        let long = "a".repeat(253);
        let name = claim_name("StatefulSet", &long);
        assert!(name.len() <= 253, "{}", name.len());
        assert_ne!(name, claim_name("Deployment", &long));
    }
}
