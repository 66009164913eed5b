//! Who may connect to the embedded broker, as Apache Kafka decides it: the listener's security protocol
//! (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), TLS with an optional client certificate (`tls`), SASL PLAIN
//! and SCRAM-SHA-256/512 (`sasl`, against the salted credentials of `users`), the principal of a client
//! certificate on an SSL listener (`certificate`: its CN), and what an authenticated user may name (`authz`:
//! topic and group name prefixes). Nothing is authenticated unless configured; the operator configures every
//! broker it serves (`authentication: none` must be explicit there).

pub mod authz;
pub mod certificate;
pub mod sasl;
pub mod tls;
pub mod users;

pub use authz::Allow;
use std::sync::Arc;
pub use users::{UserStore, UsersError};

/// A SASL mechanism the broker offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 3] = [Mechanism::Plain, Mechanism::ScramSha256, Mechanism::ScramSha512];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A user of the broker, as configured: the password is salted into the credential store and dropped.
#[derive(Clone)]
pub struct User {
    pub name: String,
    /// Some: a SASL user. None: a certificate user, the client certificate whose CN is `name` on an SSL listener
    /// that requires client certificates (it cannot authenticate with SASL).
    pub password: Option<Vec<u8>>,
    /// What the user may name; None: everything.
    pub allow: Option<Allow>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("allow", &self.allow)
            .finish()
    }
}

/// The server's TLS identity (PEM), and the CA that client certificates must chain to for mutual TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    pub certificate_chain_pem: Vec<u8>,
    pub private_key_pem: Vec<u8>,
    /// Some: every client must present a certificate issued by one of these CAs (`ssl.client.auth=required`).
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field(
                "certificate_chain_pem",
                &format!("{} bytes", self.certificate_chain_pem.len()),
            )
            .field("private_key_pem", &"<redacted>")
            .field("client_auth", &self.client_ca_pem.is_some())
            .finish()
    }
}

/// How the broker's listener authenticates clients.
#[derive(Clone, Debug, Default)]
pub struct SecurityConfig {
    /// SASL mechanisms offered; empty: no SASL (PLAINTEXT or SSL listener).
    pub mechanisms: Vec<Mechanism>,
    pub tls: Option<TlsIdentity>,
    /// The users SASL authenticates. None: keep those stored in the data dir (the standalone broker
    /// restarted without a users file); Some: exactly these.
    pub users: Option<Vec<User>>,
}

impl SecurityConfig {
    /// Kafka's name for the listener's security protocol.
    pub fn protocol(&self) -> &'static str {
        match (self.mechanisms.is_empty(), self.tls.is_some()) {
            (true, false) => "PLAINTEXT",
            (true, true) => "SSL",
            (false, false) => "SASL_PLAINTEXT",
            (false, true) => "SASL_SSL",
        }
    }
}

/// Who sent a request: what the authorizer checks names against.
#[derive(Clone, Debug)]
pub struct Principal {
    /// `User:<name>` as Kafka prints principals: the SASL user, the client certificate's CN on an SSL listener
    /// that requires client certificates, else `User:ANONYMOUS`.
    pub name: String,
    pub allow: Option<Arc<Allow>>,
}

impl Principal {
    pub fn anonymous() -> Principal {
        Principal {
            name: "User:ANONYMOUS".into(),
            allow: None,
        }
    }

    pub fn user(name: &str, allow: Option<Arc<Allow>>) -> Principal {
        Principal {
            name: format!("User:{name}"),
            allow,
        }
    }
}

/// A listener's security as the connections see it: snapshotted at accept, so that a reload applies to new
/// connections; user lookups go to the shared store, so changed credentials apply to the next authentication.
pub struct ListenerSecurity {
    pub protocol: &'static str,
    pub mechanisms: Vec<Mechanism>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Every client presents a certificate that the TLS handshake verified (`ssl.client.auth=required`).
    pub client_certificates: bool,
    pub users: Arc<UserStore>,
}

impl ListenerSecurity {
    pub fn build(config: &SecurityConfig, users: Arc<UserStore>) -> Result<ListenerSecurity, tls::TlsError> {
        Ok(ListenerSecurity {
            protocol: config.protocol(),
            mechanisms: config.mechanisms.clone(),
            tls: config.tls.as_ref().map(tls::acceptor).transpose()?,
            client_certificates: config.tls.as_ref().is_some_and(|t| t.client_ca_pem.is_some()),
            users,
        })
    }

    pub fn sasl(&self) -> bool {
        !self.mechanisms.is_empty()
    }

    /// The principal of a connection that does not authenticate with SASL, from the certificates the client
    /// presented (end entity first). On an SSL listener that requires client certificates it is `User:<CN>`,
    /// the equivalent of Kafka's `ssl.principal.mapping.rules=RULE:^CN=(.*?),.*$/$1/` (Kafka's default is the
    /// whole DN); a certificate without a CN names nobody. Elsewhere it is `User:ANONYMOUS`.
    pub fn certificate_principal(
        &self,
        certificates: Option<&[rustls_pki_types::CertificateDer<'_>]>,
    ) -> Result<Principal, certificate::CertificateNameError> {
        if !self.client_certificates {
            return Ok(Principal::anonymous());
        }
        let end_entity = certificates
            .and_then(|chain| chain.first())
            .ok_or(certificate::CertificateNameError::Malformed("no client certificate"))?;
        let common_name = certificate::common_name(end_entity)?;
        Ok(self.users.certificate_principal(&common_name))
    }
}
