//! What an embedded KafkaCluster's broker needs from Secrets: the users' passwords and the TLS certificate,
//! read (like external clusters' credentials) each time the cluster is reconciled, so a rotated password or
//! a renewed certificate reaches the broker without a restart.

use super::Error;
use super::clients::secret_value;
use super::embedded::{EmbeddedCredential, EmbeddedServe, EmbeddedTlsMaterial};
use crate::api::{EmbeddedAuthentication, EmbeddedMechanism, EmbeddedSpec, SecretKeyRef};
use crate::kafka::Secret as SecretBytes;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

pub(super) async fn resolve(secrets: &Api<Secret>, spec: &EmbeddedSpec) -> Result<EmbeddedServe, Error> {
    // `secret_value` feeds a client fingerprint; the host compares what it serves itself, so this one is unused.
    let hasher = &mut std::collections::hash_map::DefaultHasher::new();
    let secrets = Some(secrets);
    let authentication = spec.authentication.clone().unwrap_or_default();
    let EmbeddedAuthentication { mechanism, users, tls } = authentication;
    let client_certificates = tls.as_ref().is_some_and(|t| t.client_ca_secret_ref.is_some());
    let mut credentials = Vec::with_capacity(users.len());
    for user in users {
        // The CRD's rules say the same; an object admitted by an older CRD gets the reason here.
        let password = match (&user.password_secret_ref, mechanism) {
            (None, EmbeddedMechanism::None) if client_certificates => None,
            (None, EmbeddedMechanism::None) => {
                return Err(Error::Config(format!(
                    "embedded user {} is a client certificate (mechanism none) but tls.clientCaSecretRef is not set",
                    user.name
                )));
            }
            (Some(_), EmbeddedMechanism::None) => {
                return Err(Error::Config(format!(
                    "embedded user {} has a passwordSecretRef but mechanism is none (users are client certificates)",
                    user.name
                )));
            }
            (None, _) => {
                return Err(Error::Config(format!(
                    "embedded user {} needs a passwordSecretRef (users of SASL mechanisms have passwords)",
                    user.name
                )));
            }
            (Some(reference), _) => {
                let password = secret_value(secrets, reference, hasher).await?;
                if password.is_empty() {
                    return Err(Error::Config(format!(
                        "the password of embedded user {} (Secret {} key {}) is empty",
                        user.name, reference.name, reference.key
                    )));
                }
                Some(SecretBytes::new(password))
            }
        };
        credentials.push(EmbeddedCredential {
            name: user.name,
            password,
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
