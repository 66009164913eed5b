//! Pure planners: decisions as functions of observed state and spec, with no I/O. The controllers observe,
//! call these, act on the result and record it. Times are milliseconds since the Unix epoch.

pub mod duration;
pub mod group_config;
pub mod offset_init;
pub mod reset;
pub mod reset_phase;
pub mod reset_record;
pub mod retention;
pub mod scale;
