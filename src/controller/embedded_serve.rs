//! What an embedded KafkaCluster's broker needs from Secrets: the users' passwords and the TLS certificate,
//! read (like external clusters' credentials) each time the cluster is reconciled, so a rotated password or
//! a renewed certificate reaches the broker without a restart.

use super::Error;
use super::clients::secret_value;
use super::embedded::{EmbeddedCredential, EmbeddedServe, EmbeddedTlsMaterial};
use crate::api::{EmbeddedAuthentication, EmbeddedSpec, SecretKeyRef};
use crate::kafka::Secret as SecretBytes;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

pub(super) async fn resolve(secrets: &Api<Secret>, spec: &EmbeddedSpec) -> Result<EmbeddedServe, Error> {
    // `secret_value` feeds a client fingerprint; the host compares what it serves itself, so this one is unused.
    let hasher = &mut std::collections::hash_map::DefaultHasher::new();
    let secrets = Some(secrets);
    let authentication = spec.authentication.clone().unwrap_or_default();
    let EmbeddedAuthentication { mechanism, users, tls } = authentication;
    let mut credentials = Vec::with_capacity(users.len());
    for user in users {
        let password = secret_value(secrets, &user.password_secret_ref, hasher).await?;
        if password.is_empty() {
            return Err(Error::Config(format!(
                "the password of embedded user {} (Secret {} key {}) is empty",
                user.name, user.password_secret_ref.name, user.password_secret_ref.key
            )));
        }
        credentials.push(EmbeddedCredential {
            name: user.name,
            password: SecretBytes::new(password),
            allow: user.allow.map(|a| (a.topics, a.groups)),
        });
    }
    let tls = match tls {
        None => None,
        Some(tls) => {
            let key = |key: &str| SecretKeyRef {
                name: tls.secret_name.clone(),
                key: key.to_owned(),
            };
            let client_ca_pem = match &tls.client_ca_secret_ref {
                Some(reference) => Some(secret_value(secrets, reference, hasher).await?),
                None => None,
            };
            Some(EmbeddedTlsMaterial {
                certificate_chain_pem: secret_value(secrets, &key("tls.crt"), hasher).await?,
                private_key_pem: SecretBytes::new(secret_value(secrets, &key("tls.key"), hasher).await?),
                client_ca_pem,
            })
        }
    };
    Ok(EmbeddedServe {
        spec: spec.clone(),
        mechanism,
        users: credentials,
        tls,
    })
}
