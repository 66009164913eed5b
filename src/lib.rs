//! kafka-group-operator: a Kubernetes operator that owns the lifecycle of Apache Kafka consumer groups.
//! The library holds every module; `main.rs` is only the command line on top of it.

pub mod api;
pub mod broker;
pub mod controller;
pub mod http;
pub mod kafka;
pub mod lag;
pub mod plan;
pub mod telemetry;
pub mod wire;
