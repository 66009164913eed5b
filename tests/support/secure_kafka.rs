//! A real Apache Kafka broker with TLS and SASL, for tests of clients' security support: one KRaft node
//! (the same start path as `ApacheKafka`) with three listeners on loopback:
//! - PLAINTEXT: controller and inter-broker traffic, and Kafka's CLI tools (`plaintext()`);
//! - SASL_SSL: TLS (server authentication only) + SASL with SCRAM-SHA-512 (alice), SCRAM-SHA-256 (bob) and
//!   PLAIN (carol);
//! - SSL: mutual TLS, the client must present a certificate signed by the fixture's CA
//!   (`ssl.client.auth=required`);
//! - SASL_PLAINTEXT: the same SASL users without TLS (for tests of what a client sends in the clear).
//!
//! TLS comes straight from PEM files (no keystore conversion): `ssl.keystore.type=PEM` with one file holding
//! the broker's PKCS#8 key, its certificate and the CA; `ssl.truststore.type=PEM` with the CA. The broker
//! certificate has SANs `IP:127.0.0.1` and `DNS:localhost`, so clients can verify the host name. SCRAM users
//! are created when the data dir is formatted (`StorageTool format --add-scram`), PLAIN users in the listener's
//! JAAS config. No authorizer: every authenticated principal may do everything.

use super::clients::{ClientSecurity, SecurityProtocol};
use super::kafka::{ApacheKafka, Listener};
use super::pki::{IssuedCert, KeyAlgorithm, Pki};
use super::process::{fixture_dir, free_port};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A SASL mechanism the SASL_SSL listener enables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    /// The name Kafka and librdkafka use: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`.
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A user of the SASL_SSL listener and the one mechanism the broker knows it under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaslCredentials {
    pub username: String,
    pub password: String,
    pub mechanism: SaslMechanism,
}

impl SaslCredentials {
    fn new(username: &str, password: &str, mechanism: SaslMechanism) -> SaslCredentials {
        SaslCredentials {
            username: username.to_owned(),
            password: password.to_owned(),
            mechanism,
        }
    }

    /// The same user and mechanism with another password (for tests of failing authentication).
    pub fn with_password(&self, password: &str) -> SaslCredentials {
        SaslCredentials {
            password: password.to_owned(),
            ..self.clone()
        }
    }
}

/// Subject of the client certificate for the SSL (mTLS) listener.
pub const CLIENT_CERT_SUBJECT: &str = "/CN=kgo-test-client";

pub struct SecureKafka {
    broker: ApacheKafka,
    sasl_ssl_port: u16,
    ssl_port: u16,
    sasl_plaintext_port: u16,
    ca: PathBuf,
    client: IssuedCert,
    users: [SaslCredentials; 3],
}

impl SecureKafka {
    /// One secure broker for the whole test binary, started on first use and killed when the binary exits.
    pub fn shared() -> &'static SecureKafka {
        static SHARED: OnceLock<SecureKafka> = OnceLock::new();
        SHARED.get_or_init(|| {
            let mut kafka = SecureKafka::start();
            kafka.broker.keep_dir = true; // statics are never dropped; the next run's fixture_dir() cleans it up
            kafka
        })
    }

    /// Makes a PKI (RSA 2048 keys), formats a fresh data dir with the SCRAM users and starts a broker on free
    /// ports; waits until it has started. Stopped when dropped (logs kept if the thread is panicking).
    pub fn start() -> SecureKafka {
        SecureKafka::start_with_jvm_opts(super::kafka::TEST_JVM_OPTS)
    }

    /// Like `start`, with the broker JVM's options (benchmarks run it as in production).
    pub fn start_with_jvm_opts(jvm_opts: &str) -> SecureKafka {
        let dir = fixture_dir("securekafka");
        let pki = Pki::create(&dir.join("pki"), "kgo-test-kafka-ca", KeyAlgorithm::Rsa2048);
        let server = pki.server_cert("broker", "/CN=kgo-test-kafka", &[]);
        let client = pki.client_cert("client", CLIENT_CERT_SUBJECT);
        let keystore = pki.dir().join("broker-keystore.pem");
        pki.write_key_and_chain(&server, &keystore);
        let ca = pki.ca_cert().to_owned();

        let users = [
            SaslCredentials::new("alice", "alice-secret-512", SaslMechanism::ScramSha512),
            SaslCredentials::new("bob", "bob-secret-256", SaslMechanism::ScramSha256),
            SaslCredentials::new("carol", "carol-secret-plain", SaslMechanism::Plain),
        ];
        let mut format_args = Vec::new();
        let mut plain_users = String::new();
        for user in &users {
            match user.mechanism {
                SaslMechanism::Plain => plain_users.push_str(&format!(" user_{}=\"{}\"", user.username, user.password)),
                scram => format_args.extend([
                    "--add-scram".to_owned(),
                    format!("{}=[name={},password={}]", scram.as_str(), user.username, user.password),
                ]),
            }
        }

        let (sasl_ssl_port, ssl_port, sasl_plaintext_port) = (free_port(), free_port(), free_port());
        let listeners = [
            Listener {
                name: "PLAINTEXT",
                protocol: "PLAINTEXT",
                port: free_port(),
            },
            Listener {
                name: "SASL_SSL",
                protocol: "SASL_SSL",
                port: sasl_ssl_port,
            },
            Listener {
                name: "SSL",
                protocol: "SSL",
                port: ssl_port,
            },
            Listener {
                name: "SASL_PLAINTEXT",
                protocol: "SASL_PLAINTEXT",
                port: sasl_plaintext_port,
            },
        ];
        let scram_login = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
        let plain_login = format!("org.apache.kafka.common.security.plain.PlainLoginModule required{plain_users};");
        let mut properties = vec![
            "ssl.keystore.type=PEM".to_owned(),
            format!("ssl.keystore.location={}", keystore.display()),
            "ssl.truststore.type=PEM".to_owned(),
            format!("ssl.truststore.location={}", ca.display()),
            "listener.name.ssl.ssl.client.auth=required".to_owned(),
            "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN".to_owned(),
            format!("listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram_login}"),
            format!("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram_login}"),
            format!("listener.name.sasl_ssl.plain.sasl.jaas.config={plain_login}"),
        ];
        properties.extend([
            format!("listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config={scram_login}"),
            format!("listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={scram_login}"),
            format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={plain_login}"),
        ]);
        let broker = ApacheKafka::launch(
            "Apache Kafka (TLS + SASL)",
            dir,
            &listeners,
            jvm_opts,
            &properties,
            &format_args,
        );
        SecureKafka {
            broker,
            sasl_ssl_port,
            ssl_port,
            sasl_plaintext_port,
            ca,
            client,
            users,
        }
    }

    /// The same broker through its PLAINTEXT listener: CLI tools, topic creation, `describe_group_offsets`.
    pub fn plaintext(&self) -> &ApacheKafka {
        &self.broker
    }

    /// `127.0.0.1:<port>` of the PLAINTEXT listener.
    pub fn plaintext_bootstrap(&self) -> String {
        self.broker.bootstrap()
    }

    /// `127.0.0.1:<port>` of the SASL_SSL listener (TLS without client certificates, then SASL).
    pub fn sasl_ssl_bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.sasl_ssl_port)
    }

    /// `127.0.0.1:<port>` of the SASL_PLAINTEXT listener (SASL without TLS: the same users as SASL_SSL).
    pub fn sasl_plaintext_bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.sasl_plaintext_port)
    }

    /// `127.0.0.1:<port>` of the SSL listener (mutual TLS: a client certificate is required).
    pub fn ssl_bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.ssl_port)
    }

    /// The CA certificate (PEM) that signed the broker's and the client's certificates.
    pub fn ca_pem(&self) -> &Path {
        &self.ca
    }

    /// The client certificate (PEM, subject `CLIENT_CERT_SUBJECT`) the SSL listener accepts.
    pub fn client_cert_pem(&self) -> &Path {
        &self.client.cert
    }

    /// The client certificate's private key (unencrypted PKCS#8 PEM).
    pub fn client_key_pem(&self) -> &Path {
        &self.client.key
    }

    /// alice, known to the broker only under SCRAM-SHA-512.
    pub fn scram_sha_512_user(&self) -> &SaslCredentials {
        &self.users[0]
    }

    /// bob, known to the broker only under SCRAM-SHA-256.
    pub fn scram_sha_256_user(&self) -> &SaslCredentials {
        &self.users[1]
    }

    /// carol, a PLAIN user.
    pub fn plain_user(&self) -> &SaslCredentials {
        &self.users[2]
    }

    /// Every SASL user.
    pub fn users(&self) -> &[SaslCredentials] {
        &self.users
    }

    /// How a client reaches the SASL_SSL listener as `user` (trusting the fixture's CA).
    pub fn sasl_ssl_client(&self, user: &SaslCredentials) -> ClientSecurity {
        ClientSecurity {
            protocol: SecurityProtocol::SaslSsl,
            sasl: Some(user.clone()),
            ca: Some(self.ca.clone()),
            ..ClientSecurity::default()
        }
    }

    /// How a client reaches the SASL_PLAINTEXT listener as `user` (no TLS).
    pub fn sasl_plaintext_client(&self, user: &SaslCredentials) -> ClientSecurity {
        ClientSecurity {
            protocol: SecurityProtocol::SaslPlaintext,
            sasl: Some(user.clone()),
            ..ClientSecurity::default()
        }
    }

    /// How a client reaches the SSL listener with the fixture's client certificate.
    pub fn mtls_client(&self) -> ClientSecurity {
        ClientSecurity {
            protocol: SecurityProtocol::Ssl,
            ca: Some(self.ca.clone()),
            cert: Some(self.client.cert.clone()),
            key: Some(self.client.key.clone()),
            ..ClientSecurity::default()
        }
    }

    /// Directory with the PKI, the data and the broker's log (`kafka.log`).
    pub fn dir(&self) -> &Path {
        self.broker.dir()
    }

    /// The last lines of the broker's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.broker.log_tail(lines)
    }
}
