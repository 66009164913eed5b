//! The server side of SASL on one connection, as Apache Kafka's `SaslServerAuthenticator` runs it: an
//! optional ApiVersions, SaslHandshake (v0: the tokens follow as bare length-prefixed frames; v1: each in a
//! SaslAuthenticate request, KIP-152), then the mechanism's exchange — PLAIN (RFC 4616) or SCRAM (RFC 5802)
//! against the salted store. Any other request before authentication closes the connection; a failed
//! authentication is answered SASL_AUTHENTICATION_FAILED and then the connection closes, with the same
//! message for an unknown user and a wrong password.

use super::users::{StoredUser, UserStore};
use super::{Mechanism, Principal};
use crate::wire::scram::{ScramHash, attribute, verify_client_proof};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// Where a connection is in its authentication.
pub enum SaslState {
    /// Waiting for SaslHandshake.
    Start,
    /// Handshake done: the first message of `mechanism` comes next.
    Mechanism {
        mechanism: Mechanism,
        raw: bool,
    },
    /// SCRAM: the server-first message was sent.
    ScramFinal(Box<ScramPending>),
    Authenticated(Principal),
}

pub struct ScramPending {
    raw: bool,
    hash: ScramHash,
    name: String,
    user: StoredUser,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// The result of one SASL token.
pub enum Step {
    /// Send this token back and wait for the next.
    Continue(Vec<u8>),
    /// Authenticated: send this (possibly empty) token.
    Done(Vec<u8>, Principal),
    /// Failed: the message for SaslAuthenticate's error, then close.
    Failed(String),
}

/// Kafka's messages (the clients show them to users).
fn invalid_credentials(mechanism: Mechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    )
}

impl SaslState {
    /// Whether the next frame is a bare token (after a v0 handshake).
    pub fn raw(&self) -> bool {
        match self {
            SaslState::Mechanism { raw, .. } => *raw,
            SaslState::ScramFinal(pending) => pending.raw,
            _ => false,
        }
    }

    /// Handles one token of the exchange.
    pub fn step(&mut self, token: &[u8], users: &UserStore) -> Step {
        let state = std::mem::replace(self, SaslState::Start);
        let (step, next) = match state {
            SaslState::Mechanism { mechanism, raw } => match mechanism {
                Mechanism::Plain => (plain(token, users), None),
                Mechanism::ScramSha256 => scram_first(ScramHash::Sha256, raw, token, users),
                Mechanism::ScramSha512 => scram_first(ScramHash::Sha512, raw, token, users),
            },
            SaslState::ScramFinal(pending) => (scram_final(*pending, token), None),
            SaslState::Start | SaslState::Authenticated(_) => (
                Step::Failed("Unexpected SASL token: no mechanism was selected".into()),
                None,
            ),
        };
        if let Step::Done(_, principal) = &step {
            *self = SaslState::Authenticated(principal.clone());
        } else if let Some(next) = next {
            *self = next;
        }
        step
    }
}

fn plain(token: &[u8], users: &UserStore) -> Step {
    let failed = || Step::Failed("Authentication failed: Invalid username or password".into());
    let mut parts = token.splitn(3, |b| *b == 0);
    let (Some(authzid), Some(authcid), Some(password)) = (parts.next(), parts.next(), parts.next()) else {
        return Step::Failed("Invalid SASL/PLAIN response: expected 3 tokens".into());
    };
    let Ok(name) = std::str::from_utf8(authcid) else {
        return failed();
    };
    if !authzid.is_empty() && authzid != authcid {
        return Step::Failed(
            "Authentication failed: Client requested an authorization id that is different from username".into(),
        );
    }
    match users.get(name) {
        Some(user) if user.password_matches(password) => Step::Done(Vec::new(), Principal::user(name, user.allow)),
        _ => failed(),
    }
}

fn mechanism_of(hash: ScramHash) -> Mechanism {
    match hash {
        ScramHash::Sha256 => Mechanism::ScramSha256,
        ScramHash::Sha512 => Mechanism::ScramSha512,
    }
}

fn scram_first(hash: ScramHash, raw: bool, token: &[u8], users: &UserStore) -> (Step, Option<SaslState>) {
    let malformed = |what: &str| {
        (
            Step::Failed(format!("Invalid SCRAM client first message: {what}")),
            None,
        )
    };
    let Ok(message) = std::str::from_utf8(token) else {
        return malformed("not UTF-8");
    };
    // gs2-header: "n,," or "y,," (no channel binding), optionally with an authzid: "n,a=user,".
    let mut parts = message.splitn(3, ',');
    let (Some(binding), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return malformed("no GS2 header");
    };
    if binding.starts_with('p') {
        return malformed("channel binding is not supported");
    }
    if binding != "n" && binding != "y" {
        return malformed("bad GS2 header");
    }
    let Some(name) = attribute(bare, 'n').map(unescape) else {
        return malformed("no user name");
    };
    let Some(client_nonce) = attribute(bare, 'r') else {
        return malformed("no nonce");
    };
    if let Some(authzid) = authzid.strip_prefix("a=")
        && unescape(authzid) != name
    {
        return (
            Step::Failed(
                "Authentication failed: Client requested an authorization id that is different from username".into(),
            ),
            None,
        );
    }
    let Some(user) = users.get(&name) else {
        return (Step::Failed(invalid_credentials(mechanism_of(hash))), None);
    };
    let nonce = format!("{client_nonce}{}", server_nonce());
    let credential = user.credential(hash);
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&credential.salt),
        credential.iterations
    );
    let gs2_header = format!("{binding},{authzid},");
    let pending = ScramPending {
        raw,
        hash,
        name,
        user,
        gs2_header,
        client_first_bare: bare.to_owned(),
        server_first: server_first.clone(),
        nonce,
    };
    (
        Step::Continue(server_first.into_bytes()),
        Some(SaslState::ScramFinal(Box::new(pending))),
    )
}

/// Letters and digits only, as Kafka's own (`ScramFormatter.secureRandomString`): older librdkafka clients
/// mishandle a nonce with base64's `+` and `/`.
fn server_nonce() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn scram_final(pending: ScramPending, token: &[u8]) -> Step {
    let malformed = |what: &str| Step::Failed(format!("Invalid SCRAM client final message: {what}"));
    let Ok(message) = std::str::from_utf8(token) else {
        return malformed("not UTF-8");
    };
    let Some((without_proof, proof)) = message.rsplit_once(",p=") else {
        return malformed("no proof");
    };
    let Ok(proof) = B64.decode(proof) else {
        return malformed("proof is not base64");
    };
    if attribute(without_proof, 'c')
        .and_then(|c| B64.decode(c).ok())
        .as_deref()
        != Some(pending.gs2_header.as_bytes())
    {
        return malformed("channel binding does not match the GS2 header");
    }
    // Kafka checks that the nonce *ends with* the one it sent (ScramSaslServer), and librdkafka 2.0 sends the
    // client nonce once more in front of it: accept what Kafka accepts (the nonce is signed in any case).
    if !attribute(without_proof, 'r').is_some_and(|r| r.ends_with(pending.nonce.as_str())) {
        return malformed("nonce does not match the server's");
    }
    let auth_message = format!("{},{},{without_proof}", pending.client_first_bare, pending.server_first);
    let credential = pending.user.credential(pending.hash);
    match verify_client_proof(pending.hash, credential, auth_message.as_bytes(), &proof) {
        Some(signature) => Step::Done(
            format!("v={}", B64.encode(signature)).into_bytes(),
            Principal::user(&pending.name, pending.user.allow.clone()),
        ),
        None => Step::Failed(invalid_credentials(mechanism_of(pending.hash))),
    }
}

/// RFC 5802 saslname: `=2C` is a comma, `=3D` an equals sign.
fn unescape(name: &str) -> String {
    name.replace("=2C", ",").replace("=3D", "=")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::auth::User;
    use crate::kafka::sasl::{ScramClient, plain_message};

    fn store() -> UserStore {
        let store = UserStore::open(None).expect("store");
        store
            .replace(&[User {
                name: "ali,ce".into(),
                password: Some(b"pencil".to_vec()),
                allow: None,
            }])
            .expect("users");
        store
    }

    fn scram(hash: ScramHash, password: &[u8]) -> Result<Principal, String> {
        let users = store();
        let mechanism = mechanism_of(hash);
        let mut state = SaslState::Mechanism { mechanism, raw: false };
        let mut client = ScramClient::new(hash, "ali,ce", password, ScramClient::random_nonce());
        let Step::Continue(server_first) = state.step(&client.client_first(), &users) else {
            return Err("first step".into());
        };
        let client_final = client.client_final(&server_first).map_err(|e| e.to_string())?;
        match state.step(&client_final, &users) {
            Step::Done(server_final, principal) => {
                client.verify_server_final(&server_final).map_err(|e| e.to_string())?;
                Ok(principal)
            }
            Step::Failed(message) => Err(message),
            Step::Continue(_) => Err("a third step".into()),
        }
    }

    #[test]
    fn our_scram_client_authenticates_against_the_server_with_the_right_password_only() {
        for hash in [ScramHash::Sha256, ScramHash::Sha512] {
            assert_eq!(scram(hash, b"pencil").expect("authenticated").name, "User:ali,ce");
            let error = scram(hash, b"pen").expect_err("wrong password");
            assert!(error.contains("invalid credentials"), "{error}");
        }
    }

    #[test]
    fn plain_checks_the_salted_credential() {
        let users = store();
        let mut state = SaslState::Mechanism {
            mechanism: Mechanism::Plain,
            raw: false,
        };
        assert!(matches!(
            state.step(&plain_message("ali,ce", b"pencil"), &users),
            Step::Done(..)
        ));
        let mut state = SaslState::Mechanism {
            mechanism: Mechanism::Plain,
            raw: false,
        };
        assert!(matches!(
            state.step(&plain_message("ali,ce", b"x"), &users),
            Step::Failed(_)
        ));
        let mut state = SaslState::Mechanism {
            mechanism: Mechanism::Plain,
            raw: false,
        };
        assert!(matches!(state.step(b"garbage", &users), Step::Failed(_)));
    }
}
