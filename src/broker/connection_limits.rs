//! Kafka's `max.connections` and `max.connections.per.ip` for the accept loop: a connection beyond either
//! limit is closed as soon as it is accepted, before a byte is read from it. A `Permit` holds one place
//! while its connection is served and gives it back when dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The embedded broker's defaults: bounded, unlike Kafka's (2^31-1), since it serves from one process.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 200;

#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Which limit refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerIp,
}

impl Refused {
    /// The `reason` label of `kafka_broker_connections_closed_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Total => "max_connections",
            Refused::PerIp => "max_connections_per_ip",
        }
    }
}

/// One open connection's place.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_ip,
            open: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection from `ip`, or which limit it would exceed.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refused> {
        let mut open = self.lock();
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_ip {
            return Err(Refused::PerIp);
        }
        if open.total >= self.max_total {
            return Err(Refused::Total);
        }
        open.total += 1;
        open.per_ip.insert(ip, from_ip + 1);
        Ok(Permit {
            limits: self.clone(),
            ip,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_per_address_and_in_total_and_given_back() {
        let limits = ConnectionLimits::new(3, 2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        let first = limits.try_acquire(a).expect("1st");
        let _second = limits.try_acquire(a).expect("2nd");
        assert_eq!(limits.try_acquire(a).err(), Some(Refused::PerIp));
        let _third = limits.try_acquire(b).expect("another address");
        assert_eq!(limits.try_acquire(b).err(), Some(Refused::Total));
        drop(first);
        let _again = limits.try_acquire(b).expect("a freed place");
        assert_eq!(limits.lock().per_ip.get(&a), Some(&1));
    }

    #[test]
    fn an_address_with_no_connection_left_is_forgotten() {
        let limits = ConnectionLimits::new(10, 10);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        drop(limits.try_acquire(a).expect("place"));
        assert!(limits.lock().per_ip.is_empty());
        assert_eq!(limits.lock().total, 0);
    }
}
