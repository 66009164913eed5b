//! What an authenticated user may name: topic and group name prefixes (`users[].allow`). A user without
//! `allow` may name everything (the operator's own user is such a user).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allow {
    /// Topic name prefixes the user may read, write, create, describe and delete; empty: none.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Group id prefixes the user may join, commit to, describe and delete; empty: none.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Allow {
    pub fn topic(&self, name: &str) -> bool {
        self.topics.iter().any(|prefix| name.starts_with(prefix.as_str()))
    }

    pub fn group(&self, id: &str) -> bool {
        self.groups.iter().any(|prefix| id.starts_with(prefix.as_str()))
    }
}
