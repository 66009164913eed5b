//! The broker's users: for each, a salted SCRAM credential per hash (RFC 5802's StoredKey and ServerKey,
//! never the password) and what they may name. With a data dir the store is kept in `credentials.json`
//! there (mode 0600, replaced atomically), so a restarted broker knows its users without their passwords.
//! A user re-configured with the password it already has keeps its salt (the file does not churn).

use super::{Allow, User};
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

pub struct UserStore {
    path: Option<PathBuf>,
    users: RwLock<BTreeMap<String, StoredUser>>,
}

impl UserStore {
    /// The store of `data_dir` (what it holds), or an empty one in memory.
    pub fn open(data_dir: Option<&Path>) -> Result<UserStore, UsersError> {
        let path = data_dir.map(|d| d.join(FILE));
        let users = match &path {
            Some(path) => read(path)?,
            None => BTreeMap::new(),
        };
        Ok(UserStore {
            path,
            users: RwLock::new(users),
        })
    }

    pub fn get(&self, name: &str) -> Option<StoredUser> {
        self.users.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Makes the store exactly `users`, salting new or changed passwords, and writes it (if kept on disk)
    /// before it takes effect.
    pub fn replace(&self, users: &[User]) -> Result<(), UsersError> {
        let mut current = self.users.write().unwrap_or_else(|p| p.into_inner());
        let mut next = BTreeMap::new();
        for user in users {
            if user.name.is_empty() || user.name.len() > 255 || user.name.chars().any(char::is_control) {
                return Err(UsersError::InvalidName(user.name.clone()));
            }
            let allow = user.allow.clone().map(Arc::new);
            let stored = match current.get(&user.name) {
                Some(known)
                    if known.password_matches(&user.password)
                        && known.sha256.matches(ScramHash::Sha256, &user.password) =>
                {
                    StoredUser { allow, ..known.clone() }
                }
                _ => StoredUser {
                    sha256: derive(ScramHash::Sha256, &user.password),
                    sha512: derive(ScramHash::Sha512, &user.password),
                    allow,
                },
            };
            next.insert(user.name.clone(), stored);
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

/// The file's form: base64 for the binary fields.
#[derive(Serialize, Deserialize)]
struct FileUser {
    #[serde(rename = "SCRAM-SHA-256")]
    sha256: FileCredential,
    #[serde(rename = "SCRAM-SHA-512")]
    sha512: FileCredential,
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

fn read(path: &Path) -> Result<BTreeMap<String, StoredUser>, UsersError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
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
    file.into_iter()
        .map(|(name, user)| {
            let stored = StoredUser {
                sha256: user.sha256.to_credential().map_err(&corrupt)?,
                sha512: user.sha512.to_credential().map_err(&corrupt)?,
                allow: user.allow.map(Arc::new),
            };
            Ok((name, stored))
        })
        .collect()
}

fn write(path: &Path, users: &BTreeMap<String, StoredUser>) -> Result<(), UsersError> {
    let file: BTreeMap<&String, FileUser> = users
        .iter()
        .map(|(name, u)| {
            (
                name,
                FileUser {
                    sha256: FileCredential::from(&u.sha256),
                    sha512: FileCredential::from(&u.sha512),
                    allow: u.allow.as_deref().cloned(),
                },
            )
        })
        .collect();
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
            password: password.as_bytes().to_vec(),
            allow: None,
        }
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
