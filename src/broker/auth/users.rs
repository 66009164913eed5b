//! The broker's users: SASL users, each with a salted SCRAM credential per hash (RFC 5802's StoredKey and
//! ServerKey, never the password), and certificate users (no password: the client certificate whose CN is the
//! name), each with what they may name. With a data dir the store is kept in `credentials.json` there (mode
//! 0600, replaced atomically), so a restarted broker knows its users without their passwords. A user
//! re-configured with the password it already has keeps its salt (the file does not churn).

use super::{Allow, Principal, User};
use crate::wire::scram::{MIN_ITERATIONS, ScramHash, StoredCredential};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

const FILE: &str = "credentials.json";

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a credentials file of this broker: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("invalid user name {0:?}: names must be 1 to 255 characters without control characters")]
    InvalidName(String),
    #[error("user {0:?} is declared both with a password (SASL) and without one (a client certificate)")]
    TwoKinds(String),
}

/// What a user name must be (the CN of a client certificate too): 1 to 255 bytes, no control characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && !name.chars().any(char::is_control)
}

/// One user as the broker keeps it.
#[derive(Clone, Debug)]
pub struct StoredUser {
    pub sha256: StoredCredential,
    pub sha512: StoredCredential,
    pub allow: Option<Arc<Allow>>,
}

impl StoredUser {
    pub fn credential(&self, hash: ScramHash) -> &StoredCredential {
        match hash {
            ScramHash::Sha256 => &self.sha256,
            ScramHash::Sha512 => &self.sha512,
        }
    }

    /// PLAIN: the password checked against the SHA-512 credential.
    pub fn password_matches(&self, password: &[u8]) -> bool {
        self.sha512.matches(ScramHash::Sha512, password)
    }
}

/// A certificate user: what the client certificate of that CN may name (None: everything).
type CertificateUser = Option<Arc<Allow>>;

#[derive(Default)]
struct Users {
    sasl: BTreeMap<String, StoredUser>,
    certificates: BTreeMap<String, CertificateUser>,
}

pub struct UserStore {
    path: Option<PathBuf>,
    users: RwLock<Users>,
}

impl UserStore {
    /// The store of `data_dir` (what it holds), or an empty one in memory.
    pub fn open(data_dir: Option<&Path>) -> Result<UserStore, UsersError> {
        let path = data_dir.map(|d| d.join(FILE));
        let users = match &path {
            Some(path) => read(path)?,
            None => Users::default(),
        };
        Ok(UserStore {
            path,
            users: RwLock::new(users),
        })
    }

    /// The SASL user `name` (a certificate user has no credential to authenticate with).
    pub fn get(&self, name: &str) -> Option<StoredUser> {
        self.read().sasl.get(name).cloned()
    }

    /// The SASL users' names.
    pub fn names(&self) -> Vec<String> {
        self.read().sasl.keys().cloned().collect()
    }

    /// The certificate users' names.
    pub fn certificate_names(&self) -> Vec<String> {
        self.read().certificates.keys().cloned().collect()
    }

    /// The principal of a verified client certificate whose CN is `common_name`, as Kafka's authorizer sees
    /// `User:<CN>`: the certificate user of that name may name what its `allow` says; when certificate users
    /// are declared, any other CN may name nothing (a principal without ACLs); when none are, every
    /// certificate may name everything.
    pub fn certificate_principal(&self, common_name: &str) -> Principal {
        let users = self.read();
        let allow = match users.certificates.get(common_name) {
            Some(allow) => allow.clone(),
            None if users.certificates.is_empty() => None,
            None => Some(Arc::new(Allow::default())),
        };
        Principal::user(common_name, allow)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Users> {
        self.users.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the store exactly `users`, salting new or changed passwords, and writes it (if kept on disk)
    /// before it takes effect.
    pub fn replace(&self, users: &[User]) -> Result<(), UsersError> {
        let mut current = self.users.write().unwrap_or_else(|p| p.into_inner());
        let mut next = Users::default();
        for user in users {
            if !valid_name(&user.name) {
                return Err(UsersError::InvalidName(user.name.clone()));
            }
            let allow = user.allow.clone().map(Arc::new);
            let Some(password) = &user.password else {
                next.certificates.insert(user.name.clone(), allow);
                continue;
            };
            let stored = match current.sasl.get(&user.name) {
                Some(known)
                    if known.password_matches(password) && known.sha256.matches(ScramHash::Sha256, password) =>
                {
                    StoredUser { allow, ..known.clone() }
                }
                _ => StoredUser {
                    sha256: derive(ScramHash::Sha256, password),
                    sha512: derive(ScramHash::Sha512, password),
                    allow,
                },
            };
            next.sasl.insert(user.name.clone(), stored);
        }
        if let Some(name) = next.sasl.keys().find(|name| next.certificates.contains_key(*name)) {
            return Err(UsersError::TwoKinds(name.clone()));
        }
        if let Some(path) = &self.path {
            write(path, &next)?;
        }
        *current = next;
        Ok(())
    }
}

fn derive(hash: ScramHash, password: &[u8]) -> StoredCredential {
    let salt: [u8; 32] = rand::random();
    StoredCredential::derive(hash, password, salt.to_vec(), MIN_ITERATIONS)
}

/// The file's form: base64 for the binary fields. A user without SCRAM credentials is a certificate user.
#[derive(Serialize, Deserialize)]
struct FileUser {
    #[serde(rename = "SCRAM-SHA-256", default, skip_serializing_if = "Option::is_none")]
    sha256: Option<FileCredential>,
    #[serde(rename = "SCRAM-SHA-512", default, skip_serializing_if = "Option::is_none")]
    sha512: Option<FileCredential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allow: Option<Allow>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileCredential {
    salt: String,
    iterations: u32,
    stored_key: String,
    server_key: String,
}

impl FileCredential {
    fn from(c: &StoredCredential) -> FileCredential {
        FileCredential {
            salt: B64.encode(&c.salt),
            iterations: c.iterations,
            stored_key: B64.encode(&c.stored_key),
            server_key: B64.encode(&c.server_key),
        }
    }

    fn to_credential(&self) -> Result<StoredCredential, String> {
        let field = |name: &str, text: &str| B64.decode(text).map_err(|e| format!("{name}: {e}"));
        if self.iterations < MIN_ITERATIONS {
            return Err(format!("iterations {} below {MIN_ITERATIONS}", self.iterations));
        }
        Ok(StoredCredential {
            salt: field("salt", &self.salt)?,
            iterations: self.iterations,
            stored_key: field("storedKey", &self.stored_key)?,
            server_key: field("serverKey", &self.server_key)?,
        })
    }
}

fn read(path: &Path) -> Result<Users, UsersError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
        Err(source) => {
            return Err(UsersError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let corrupt = |message: String| UsersError::Corrupt {
        path: path.to_owned(),
        message,
    };
    let file: BTreeMap<String, FileUser> = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut users = Users::default();
    for (name, user) in file {
        let allow = user.allow.map(Arc::new);
        match (user.sha256, user.sha512) {
            (Some(sha256), Some(sha512)) => {
                let stored = StoredUser {
                    sha256: sha256.to_credential().map_err(&corrupt)?,
                    sha512: sha512.to_credential().map_err(&corrupt)?,
                    allow,
                };
                users.sasl.insert(name, stored);
            }
            (None, None) => {
                users.certificates.insert(name, allow);
            }
            _ => {
                return Err(corrupt(format!(
                    "user {name:?} has one SCRAM credential without the other"
                )));
            }
        }
    }
    Ok(users)
}

fn write(path: &Path, users: &Users) -> Result<(), UsersError> {
    let sasl = users.sasl.iter().map(|(name, u)| {
        (
            name,
            FileUser {
                sha256: Some(FileCredential::from(&u.sha256)),
                sha512: Some(FileCredential::from(&u.sha512)),
                allow: u.allow.as_deref().cloned(),
            },
        )
    });
    let certificates = users.certificates.iter().map(|(name, allow)| {
        (
            name,
            FileUser {
                sha256: None,
                sha512: None,
                allow: allow.as_deref().cloned(),
            },
        )
    });
    let file: BTreeMap<&String, FileUser> = sasl.chain(certificates).collect();
    let json = serde_json::to_vec_pretty(&file).expect("credentials serialize");
    let failed = |source| UsersError::Write {
        path: path.to_owned(),
        source,
    };
    let temp = path.with_extension("json.tmp");
    let written = (|| {
        use std::io::Write as _;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options.open(&temp)?;
        out.write_all(&json)?;
        out.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(failed(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: &str) -> User {
        User {
            name: name.into(),
            password: Some(password.as_bytes().to_vec()),
            allow: None,
        }
    }

    fn certificate_user(name: &str, allow: Option<Allow>) -> User {
        User {
            name: name.into(),
            password: None,
            allow,
        }
    }

    fn only(prefix: &str) -> Allow {
        Allow {
            topics: vec![prefix.into()],
            groups: vec![prefix.into()],
        }
    }

    #[test]
    fn without_certificate_users_every_certificate_may_name_everything() {
        let store = UserStore::open(None).expect("store");
        store.replace(&[user("alice", "a-password")]).expect("replace");
        let principal = store.certificate_principal("alice");
        assert_eq!(principal.name, "User:alice");
        assert!(principal.allow.is_none(), "{principal:?}");
        assert!(store.certificate_principal("anyone").allow.is_none());
    }

    #[test]
    fn a_certificate_user_limits_its_cn_and_an_undeclared_cn_may_name_nothing() {
        let store = UserStore::open(None).expect("store");
        store
            .replace(&[
                certificate_user("alice", Some(only("alice-"))),
                certificate_user("admin", None),
                user("kafka-group-operator", "generated"),
            ])
            .expect("replace");
        let alice = store.certificate_principal("alice");
        assert_eq!(alice.name, "User:alice");
        assert_eq!(alice.allow.as_deref(), Some(&only("alice-")));
        assert!(store.certificate_principal("admin").allow.is_none());
        for undeclared in ["mallory", "kafka-group-operator", "Alice"] {
            let principal = store.certificate_principal(undeclared);
            let allow = principal.allow.expect("limited");
            assert!(
                !allow.topic("alice-x") && !allow.topic("") && !allow.group("g"),
                "{undeclared}"
            );
        }
    }

    #[test]
    fn certificate_users_cannot_authenticate_with_sasl_and_do_not_count_as_sasl_users() {
        let store = UserStore::open(None).expect("store");
        store.replace(&[certificate_user("alice", None)]).expect("replace");
        assert!(store.get("alice").is_none());
        assert!(store.names().is_empty());
        assert_eq!(store.certificate_names(), ["alice"]);
        let err = store
            .replace(&[certificate_user("alice", None), user("alice", "pw")])
            .expect_err("one name, two kinds");
        assert!(
            matches!(err, UsersError::TwoKinds(ref name) if name == "alice"),
            "{err}"
        );
    }

    #[test]
    fn certificate_users_are_kept_in_the_file_and_known_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = UserStore::open(Some(dir.path())).expect("open");
        store
            .replace(&[certificate_user("alice", Some(only("alice-"))), user("bob", "b")])
            .expect("replace");
        let reopened = UserStore::open(Some(dir.path())).expect("reopen");
        assert_eq!(reopened.certificate_names(), ["alice"]);
        assert_eq!(
            reopened.certificate_principal("alice").allow.as_deref(),
            Some(&only("alice-"))
        );
        assert!(reopened.get("bob").expect("bob").password_matches(b"b"));
        assert!(reopened.certificate_principal("mallory").allow.is_some());
    }

    #[test]
    fn the_file_holds_salted_keys_never_the_password_and_keeps_salts_of_unchanged_passwords() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = UserStore::open(Some(dir.path())).expect("open");
        store
            .replace(&[user("alice", "correct horse battery")])
            .expect("replace");
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("file");
        assert!(!text.contains("correct horse battery"), "{text}");
        assert!(text.contains("storedKey"), "{text}");
        let salt = store.get("alice").expect("alice").sha512.salt;

        let reopened = UserStore::open(Some(dir.path())).expect("reopen");
        assert!(
            reopened
                .get("alice")
                .expect("alice")
                .password_matches(b"correct horse battery")
        );
        reopened
            .replace(&[user("alice", "correct horse battery")])
            .expect("same password");
        assert_eq!(reopened.get("alice").expect("alice").sha512.salt, salt);
        reopened
            .replace(&[user("alice", "new"), user("bob", "b")])
            .expect("new password");
        assert!(reopened.get("alice").expect("alice").password_matches(b"new"));
        assert_ne!(reopened.get("alice").expect("alice").sha512.salt, salt);
        reopened.replace(&[user("bob", "b")]).expect("alice removed");
        assert!(reopened.get("alice").is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
