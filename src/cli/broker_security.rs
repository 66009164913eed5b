//! The standalone broker's security from files (`kafka-group-operator broker --sasl-mechanisms …
//! --users-file … --tls-cert …`): passwords and keys are read from files, never taken as arguments (they
//! would show in `ps`).

use anyhow::{Context as _, Result, bail};
use kafka_group_operator::broker::auth::{Mechanism, SecurityConfig, TlsIdentity, User};
use std::path::{Path, PathBuf};

pub struct SecurityFiles<'a> {
    pub mechanisms: &'a [String],
    pub users_file: Option<&'a Path>,
    pub tls_cert: Option<&'a PathBuf>,
    pub tls_key: Option<&'a PathBuf>,
    pub tls_client_ca: Option<&'a PathBuf>,
}

pub fn security(files: SecurityFiles<'_>) -> Result<SecurityConfig> {
    let mechanisms = files
        .mechanisms
        .iter()
        .map(|name| {
            Mechanism::parse(name.trim())
                .with_context(|| format!("unknown SASL mechanism {name:?}: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))
        })
        .collect::<Result<Vec<_>>>()?;
    let users = files.users_file.map(users).transpose()?;
    if users.is_some() && mechanisms.is_empty() {
        bail!("--users-file needs --sasl-mechanisms (the users authenticate with SASL)");
    }
    let read = |what: &str, path: &Path| {
        std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
    };
    let tls = match (files.tls_cert, files.tls_key) {
        (Some(cert), Some(key)) => Some(TlsIdentity {
            certificate_chain_pem: read("TLS certificate", cert)?,
            private_key_pem: read("TLS key", key)?,
            client_ca_pem: files.tls_client_ca.map(|ca| read("client CA", ca)).transpose()?,
        }),
        (None, None) if files.tls_client_ca.is_some() => bail!("--tls-client-ca needs --tls-cert and --tls-key"),
        (None, None) => None,
        _ => bail!("TLS needs both --tls-cert and --tls-key"),
    };
    Ok(SecurityConfig { mechanisms, tls, users })
}

/// `name:password` per line; blank lines and lines starting with `#` are skipped.
fn users(path: &Path) -> Result<Vec<User>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the users file {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|(n, line)| {
            let Some((name, password)) = line.split_once(':') else {
                bail!("{} line {}: expected name:password", path.display(), n + 1);
            };
            if name.is_empty() || password.is_empty() {
                bail!(
                    "{} line {}: the name and the password must not be empty",
                    path.display(),
                    n + 1
                );
            }
            Ok(User {
                name: name.to_owned(),
                password: Some(password.as_bytes().to_vec()),
                allow: None,
            })
        })
        .collect()
}
