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
    let kind = if !mechanisms.is_empty() {
        UserKind::Sasl
    } else if files.tls_client_ca.is_some() {
        UserKind::Certificate
    } else if files.users_file.is_some() {
        bail!(
            "--users-file needs --sasl-mechanisms (users with passwords) or --tls-client-ca (users are the CNs of \
             client certificates)"
        );
    } else {
        UserKind::Sasl
    };
    let users = files.users_file.map(|path| users(path, kind)).transpose()?;
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

/// Who the users file declares: SASL users, or (an SSL listener with client certificates and no SASL) the
/// certificate users, each the client certificate whose CN is the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UserKind {
    Sasl,
    Certificate,
}

/// `name:password` per line with SASL, a certificate's CN alone per line without (then a CN holding `:`
/// cannot be declared here); blank lines and lines starting with `#` are skipped. No line is ever quoted in
/// an error (it may hold a password).
fn users(path: &Path, kind: UserKind) -> Result<Vec<User>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the users file {}", path.display()))?;
    parse_users(&text, kind).map_err(|(n, message)| anyhow::anyhow!("{} line {n}: {message}", path.display()))
}

fn parse_users(text: &str, kind: UserKind) -> Result<Vec<User>, (usize, &'static str)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|(n, line)| {
            if kind == UserKind::Certificate {
                if line.contains(':') {
                    return Err((
                        n + 1,
                        "name:password users authenticate with SASL, which needs --sasl-mechanisms; with \
                         --tls-client-ca and no SASL each line is the CN of a client certificate, without a password",
                    ));
                }
                return Ok(User {
                    name: line.trim().to_owned(),
                    password: None,
                    allow: None,
                });
            }
            let Some((name, password)) = line.split_once(':') else {
                return Err((
                    n + 1,
                    "expected name:password (users without a password are client certificates: they need \
                     --tls-client-ca and no --sasl-mechanisms)",
                ));
            };
            if name.is_empty() || password.is_empty() {
                return Err((n + 1, "the name and the password must not be empty"));
            }
            Ok(User {
                name: name.to_owned(),
                password: Some(password.as_bytes().to_vec()),
                allow: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_sasl_each_line_is_name_and_password() {
        let users = parse_users("# users\nalice:secret\n\nbob:b:c\n", UserKind::Sasl).expect("users");
        let parsed: Vec<_> = users.iter().map(|u| (u.name.as_str(), u.password.as_deref())).collect();
        assert_eq!(parsed, [("alice", Some(&b"secret"[..])), ("bob", Some(&b"b:c"[..]))]);
        let (line, message) = parse_users("alice:secret\ncarol\n", UserKind::Sasl).expect_err("no password");
        assert_eq!(line, 2);
        assert!(message.contains("--tls-client-ca"), "{message}");
    }

    #[test]
    fn with_client_certificates_and_no_sasl_each_line_is_a_cn_without_password() {
        let users = parse_users("# CNs\nalice\n  bob smith \n", UserKind::Certificate).expect("users");
        let parsed: Vec<_> = users.iter().map(|u| (u.name.as_str(), u.password.is_none())).collect();
        assert_eq!(parsed, [("alice", true), ("bob smith", true)]);
        let (line, message) = parse_users("alice\nbob:a-password\n", UserKind::Certificate).expect_err("a password");
        assert_eq!(line, 2);
        assert!(
            message.contains("--sasl-mechanisms") && !message.contains("a-password"),
            "{message}"
        );
    }

    #[test]
    fn a_users_file_needs_sasl_or_client_certificates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        std::fs::write(&path, "alice\n").expect("users");
        let files = SecurityFiles {
            mechanisms: &[],
            users_file: Some(&path),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        };
        let err = security(files)
            .expect_err("neither SASL nor client certificates")
            .to_string();
        assert!(
            err.contains("--sasl-mechanisms") && err.contains("--tls-client-ca"),
            "{err}"
        );
    }
}
