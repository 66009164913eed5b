//! The arithmetic of SCRAM (RFC 5802, with SHA-256/512 as RFC 7677 and Kafka's KIP-84 use them), shared by
//! the client's exchange (`kafka::sasl`) and the embedded broker's (`broker::auth`): salted password, keys,
//! signatures. No I/O and no message parsing here.

use hmac::{Mac, SimpleHmac};
use sha2::{Digest, Sha256, Sha512};

/// Kafka's minimum (and default) SCRAM iteration count.
pub const MIN_ITERATIONS: u32 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn mechanism(self) -> &'static str {
        match self {
            ScramHash::Sha256 => "SCRAM-SHA-256",
            ScramHash::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => hmac_with::<Sha256>(key, data),
            ScramHash::Sha512 => hmac_with::<Sha512>(key, data),
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with this hash's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => pbkdf2_with::<Sha256>(password, salt, iterations),
            ScramHash::Sha512 => pbkdf2_with::<Sha512>(password, salt, iterations),
        }
    }
}

/// What a server keeps of a password (RFC 5802 section 3): never the password itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl StoredCredential {
    pub fn derive(hash: ScramHash, password: &[u8], salt: Vec<u8>, iterations: u32) -> StoredCredential {
        let salted = hash.salted_password(password, &salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        StoredCredential {
            stored_key: hash.digest(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
            salt,
            iterations,
        }
    }

    /// Whether `password` is the one this credential was derived from (in constant time in the keys).
    pub fn matches(&self, hash: ScramHash, password: &[u8]) -> bool {
        let again = StoredCredential::derive(hash, password, self.salt.clone(), self.iterations);
        constant_time_eq(&again.stored_key, &self.stored_key)
    }
}

/// (ClientProof, ServerSignature) of an exchange, as the client computes them from the password.
pub fn client_proofs(
    hash: ScramHash,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    auth_message: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let salted = hash.salted_password(password, salt, iterations);
    let client_key = hash.hmac(&salted, b"Client Key");
    let stored_key = hash.digest(&client_key);
    let client_signature = hash.hmac(&stored_key, auth_message);
    let proof = xor(&client_key, &client_signature);
    let server_key = hash.hmac(&salted, b"Server Key");
    (proof, hash.hmac(&server_key, auth_message))
}

/// The server's check of a ClientProof against what it stored; on success, the ServerSignature to send.
pub fn verify_client_proof(
    hash: ScramHash,
    stored: &StoredCredential,
    auth_message: &[u8],
    proof: &[u8],
) -> Option<Vec<u8>> {
    let client_signature = hash.hmac(&stored.stored_key, auth_message);
    if proof.len() != client_signature.len() {
        return None;
    }
    let client_key = xor(proof, &client_signature);
    constant_time_eq(&hash.digest(&client_key), &stored.stored_key).then(|| hash.hmac(&stored.server_key, auth_message))
}

/// The value of attribute `name` (`r`, `s`, `i`, …) in a SCRAM message `a=1,b=2`.
pub fn attribute(message: &str, name: char) -> Option<&str> {
    message
        .split(',')
        .find_map(|part| part.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

fn hmac_with<D>(key: &[u8], data: &[u8]) -> Vec<u8>
where
    D: Digest + hmac::digest::core_api::BlockSizeUser + Clone,
{
    let mut mac = <SimpleHmac<D> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn pbkdf2_with<D>(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8>
where
    D: Digest + hmac::digest::core_api::BlockSizeUser + Clone + Sync,
{
    let mut salted = vec![0u8; <D as Digest>::output_size()];
    pbkdf2::pbkdf2::<SimpleHmac<D>>(password, salt, iterations, &mut salted).expect("HMAC accepts keys of any length");
    salted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_proof_verifies_against_the_stored_credential_and_no_other() {
        for hash in [ScramHash::Sha256, ScramHash::Sha512] {
            let stored = StoredCredential::derive(hash, b"pencil", b"salty".to_vec(), 4096);
            let (proof, signature) = client_proofs(hash, b"pencil", b"salty", 4096, b"auth message");
            assert_eq!(
                verify_client_proof(hash, &stored, b"auth message", &proof),
                Some(signature)
            );
            let (wrong, _) = client_proofs(hash, b"pen", b"salty", 4096, b"auth message");
            assert_eq!(verify_client_proof(hash, &stored, b"auth message", &wrong), None);
            assert_eq!(verify_client_proof(hash, &stored, b"another message", &proof), None);
            assert!(stored.matches(hash, b"pencil"));
            assert!(!stored.matches(hash, b"pencil "));
        }
    }
}
