//! Replays of real retail files through the node REST API.
//!
//! - [`plan`]: the parsed file as a list of trading operations (format-independent).
//! - [`online_retail`], [`supermarket`]: the two file layouts.
//! - [`drive`]: sends a plan through the nodes' REST APIs.

pub mod drive;
pub mod online_retail;
pub mod plan;
pub mod supermarket;
