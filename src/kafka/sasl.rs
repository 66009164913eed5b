//! SASL mechanisms as pure message exchanges: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802/7677).
//! The connection carries the messages in SaslAuthenticate requests; nothing here does I/O.

use crate::wire::scram::{MIN_ITERATIONS, attribute, client_proofs};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// The single PLAIN message: `\0user\0password`.
pub fn plain_message(username: &str, password: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(username.len() + password.len() + 2);
    msg.push(0);
    msg.extend_from_slice(username.as_bytes());
    msg.push(0);
    msg.extend_from_slice(password);
    msg
}

pub use crate::wire::scram::ScramHash;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("server message is malformed: {0}")]
    Malformed(&'static str),
    #[error("server nonce does not extend the client nonce")]
    NonceMismatch,
    #[error("server rejected the credentials: {0}")]
    ServerError(String),
    #[error("server signature does not verify (the server does not know the password)")]
    BadServerSignature,
    #[error("iteration count {0} is below the minimum of 4096")]
    TooFewIterations(u32),
}

/// A SCRAM client exchange: `client_first()`, then `client_final(server_first)`, then
/// `verify_server_final(server_final)`.
pub struct ScramClient {
    hash: ScramHash,
    username: String,
    password: Vec<u8>,
    client_nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(hash: ScramHash, username: &str, password: &[u8], client_nonce: String) -> Self {
        ScramClient {
            hash,
            username: username.replace('=', "=3D").replace(',', "=2C"),
            password: password.to_vec(),
            client_nonce,
            server_signature: None,
        }
    }

    /// A random printable nonce (no commas), as RFC 5802 requires.
    pub fn random_nonce() -> String {
        use rand::Rng;
        let bytes: [u8; 24] = rand::rng().random();
        B64.encode(bytes)
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", self.username, self.client_nonce)
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare()).into_bytes()
    }

    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let server_first = std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(e) = attribute(server_first, 'e') {
            return Err(ScramError::ServerError(e.to_owned()));
        }
        let nonce = attribute(server_first, 'r').ok_or(ScramError::Malformed("no nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        let salt = attribute(server_first, 's')
            .and_then(|s| B64.decode(s).ok())
            .ok_or(ScramError::Malformed("no salt"))?;
        let iterations: u32 = attribute(server_first, 'i')
            .and_then(|i| i.parse().ok())
            .ok_or(ScramError::Malformed("no iteration count"))?;
        if iterations < MIN_ITERATIONS {
            return Err(ScramError::TooFewIterations(iterations));
        }
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare());
        let (proof, server_signature) =
            client_proofs(self.hash, &self.password, &salt, iterations, auth_message.as_bytes());
        self.server_signature = Some(server_signature);
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let server_final = std::str::from_utf8(server_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(e) = attribute(server_final, 'e') {
            return Err(ScramError::ServerError(e.to_owned()));
        }
        let verifier = attribute(server_final, 'v')
            .and_then(|v| B64.decode(v).ok())
            .ok_or(ScramError::Malformed("no verifier"))?;
        match &self.server_signature {
            Some(expected) if *expected == verifier => Ok(()),
            _ => Err(ScramError::BadServerSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exchange of RFC 7677, section 3.
    #[test]
    fn scram_sha_256_matches_rfc_7677() {
        let mut client = ScramClient::new(ScramHash::Sha256, "user", b"pencil", "rOprNGfwEbeRWgbNEkqO".into());
        assert_eq!(client.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = client.client_final(server_first).expect("client final");
        assert_eq!(
            String::from_utf8(client_final).expect("utf8"),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        client
            .verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .expect("server signature verifies");
    }

    #[test]
    fn a_forged_server_signature_is_rejected() {
        let mut client = ScramClient::new(ScramHash::Sha256, "user", b"pencil", "rOprNGfwEbeRWgbNEkqO".into());
        client
            .client_final(b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .expect("client final");
        assert_eq!(
            client.verify_server_final(b"v=AAAA"),
            Err(ScramError::BadServerSignature)
        );
    }

    #[test]
    fn a_server_nonce_that_does_not_extend_ours_is_rejected() {
        let mut client = ScramClient::new(ScramHash::Sha512, "user", b"pencil", "abc".into());
        assert_eq!(
            client.client_final(b"r=xyz123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            Err(ScramError::NonceMismatch)
        );
    }

    #[test]
    fn usernames_are_escaped() {
        let client = ScramClient::new(ScramHash::Sha512, "a=b,c", b"p", "n".into());
        assert_eq!(client.client_first(), b"n,,n=a=3Db=2Cc,r=n");
    }

    #[test]
    fn plain_message_is_nul_separated() {
        assert_eq!(plain_message("alice", b"pw"), b"\0alice\0pw");
    }
}
