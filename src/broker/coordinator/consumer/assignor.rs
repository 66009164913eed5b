//! The server-side assignors of KIP-848 consumer groups (`group.consumer.assignors`): `uniform` (the default:
//! balanced and sticky — a member keeps what it has while that stays balanced) and `range` (per topic, members
//! in member-id order get contiguous ranges, as the client-side RangeAssignor). Pure functions of the members'
//! subscriptions, the topics' partition counts and the previous target.

use std::collections::{BTreeMap, BTreeSet};

/// (topic, partition)
pub type Tp = (String, i32);
/// A member's partitions.
pub type Assignment = BTreeSet<Tp>;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
pub const ASSIGNORS: [&str; 2] = [UNIFORM, RANGE];

/// One member as the assignor sees it.
pub struct Subscriber<'a> {
    pub member_id: &'a str,
    pub topics: &'a BTreeSet<String>,
    /// The member's previous target (what stickiness keeps).
    pub previous: Option<&'a Assignment>,
}

/// The target assignment of every member (each member present, possibly with nothing).
pub fn assign(
    assignor: &str,
    members: &[Subscriber<'_>],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    if assignor == RANGE {
        range(members, partitions)
    } else {
        uniform(members, partitions)
    }
}

fn range(members: &[Subscriber<'_>], partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), Assignment::new()))
        .collect();
    for (topic, &count) in partitions {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .map(|m| m.member_id)
            .collect();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        subscribers.sort_unstable();
        let n = subscribers.len() as i32;
        let (quota, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let take = quota + i32::from((i as i32) < extra);
            let assigned = out.entry((*member).to_owned()).or_default();
            for p in next..next + take {
                assigned.insert((topic.clone(), p));
            }
            next += take;
        }
    }
    out
}

fn uniform(members: &[Subscriber<'_>], partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Assignment> {
    let subscribed = |member: &Subscriber<'_>, tp: &Tp| member.topics.contains(&tp.0);
    let exists = |tp: &Tp| partitions.get(&tp.0).is_some_and(|&n| tp.1 >= 0 && tp.1 < n);
    let by_id: BTreeMap<&str, &Subscriber<'_>> = members.iter().map(|m| (m.member_id, m)).collect();
    let mut out: BTreeMap<String, Assignment> = BTreeMap::new();
    let mut taken: BTreeSet<Tp> = BTreeSet::new();
    // Stickiness: what a member had and may still have stays with it.
    for m in members {
        let mut keep = Assignment::new();
        for tp in m.previous.into_iter().flatten() {
            if exists(tp) && subscribed(m, tp) && taken.insert(tp.clone()) {
                keep.insert(tp.clone());
            }
        }
        out.insert(m.member_id.to_owned(), keep);
    }
    // The rest, each to the least loaded member that subscribes to its topic.
    for (topic, &count) in partitions {
        for p in 0..count.max(0) {
            let tp = (topic.clone(), p);
            if taken.contains(&tp) {
                continue;
            }
            let target = out
                .iter()
                .filter(|(id, _)| by_id.get(id.as_str()).is_some_and(|m| subscribed(m, &tp)))
                .min_by_key(|(id, a)| (a.len(), (*id).clone()))
                .map(|(id, _)| id.clone());
            if let Some(id) = target {
                taken.insert(tp.clone());
                out.entry(id).or_default().insert(tp);
            }
        }
    }
    // Balance: move partitions from the most to the least loaded member that can take them, until no move
    // makes the spread smaller (bounded: each move lowers the sum of squared loads).
    for _ in 0..taken.len() {
        let moved = (|| {
            let (from, from_len) = out
                .iter()
                .map(|(id, a)| (id.clone(), a.len()))
                .max_by_key(|(id, n)| (*n, std::cmp::Reverse(id.clone())))?;
            let candidates: Vec<(String, usize)> = out
                .iter()
                .filter(|(_, a)| a.len() + 1 < from_len)
                .map(|(id, a)| (id.clone(), a.len()))
                .collect();
            for tp in out[&from].iter().rev() {
                let to = candidates
                    .iter()
                    .filter(|(id, _)| by_id.get(id.as_str()).is_some_and(|m| subscribed(m, tp)))
                    .min_by_key(|(id, n)| (*n, id.clone()));
                if let Some((to, _)) = to {
                    return Some((from.clone(), to.clone(), tp.clone()));
                }
            }
            None
        })();
        let Some((from, to, tp)) = moved else { break };
        if let Some(a) = out.get_mut(&from) {
            a.remove(&tp);
        }
        out.entry(to).or_default().insert(tp);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn sizes(a: &BTreeMap<String, Assignment>) -> Vec<usize> {
        a.values().map(BTreeSet::len).collect()
    }

    #[test]
    fn uniform_spreads_evenly_and_keeps_what_members_had() {
        let t = topics(&["a"]);
        let parts = BTreeMap::from([("a".to_owned(), 6)]);
        let first = assign(
            UNIFORM,
            &[Subscriber {
                member_id: "m1",
                topics: &t,
                previous: None,
            }],
            &parts,
        );
        assert_eq!(sizes(&first), vec![6]);
        let second = assign(
            UNIFORM,
            &[
                Subscriber {
                    member_id: "m1",
                    topics: &t,
                    previous: first.get("m1"),
                },
                Subscriber {
                    member_id: "m2",
                    topics: &t,
                    previous: None,
                },
            ],
            &parts,
        );
        assert_eq!(sizes(&second), vec![3, 3]);
        assert!(second["m1"].is_subset(&first["m1"]), "m1 keeps part of what it had");
        let all: BTreeSet<Tp> = second.values().flatten().cloned().collect();
        assert_eq!(all.len(), 6, "every partition once");
    }

    #[test]
    fn uniform_gives_a_topic_only_to_its_subscribers() {
        let (ab, b) = (topics(&["a", "b"]), topics(&["b"]));
        let parts = BTreeMap::from([("a".to_owned(), 4), ("b".to_owned(), 2)]);
        let out = assign(
            UNIFORM,
            &[
                Subscriber {
                    member_id: "m1",
                    topics: &ab,
                    previous: None,
                },
                Subscriber {
                    member_id: "m2",
                    topics: &b,
                    previous: None,
                },
            ],
            &parts,
        );
        assert!(out["m2"].iter().all(|(t, _)| t == "b"));
        assert_eq!(sizes(&out), vec![4, 2]);
    }

    #[test]
    fn range_gives_contiguous_ranges_in_member_order() {
        let t = topics(&["a"]);
        let parts = BTreeMap::from([("a".to_owned(), 5)]);
        let out = assign(
            RANGE,
            &[
                Subscriber {
                    member_id: "m2",
                    topics: &t,
                    previous: None,
                },
                Subscriber {
                    member_id: "m1",
                    topics: &t,
                    previous: None,
                },
            ],
            &parts,
        );
        assert_eq!(
            out["m1"],
            BTreeSet::from([("a".to_owned(), 0), ("a".to_owned(), 1), ("a".to_owned(), 2)])
        );
        assert_eq!(out["m2"], BTreeSet::from([("a".to_owned(), 3), ("a".to_owned(), 4)]));
    }

    #[test]
    fn more_members_than_partitions_leave_some_empty() {
        let t = topics(&["a"]);
        let parts = BTreeMap::from([("a".to_owned(), 1)]);
        let members: Vec<Subscriber<'_>> = ["m1", "m2", "m3"]
            .iter()
            .map(|id| Subscriber {
                member_id: id,
                topics: &t,
                previous: None,
            })
            .collect();
        for assignor in ASSIGNORS {
            let out = assign(assignor, &members, &parts);
            assert_eq!(out.len(), 3);
            assert_eq!(out.values().map(BTreeSet::len).sum::<usize>(), 1, "{assignor}");
        }
    }
}
