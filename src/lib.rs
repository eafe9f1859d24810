//! signpost: a DNS-interface service-discovery server. Sources (zone files, the API, health
//! probes) feed one registry writer; it publishes immutable snapshots; the DNS server
//! answers from the current snapshot without locks.
#![forbid(unsafe_code)]

pub mod acl;
pub mod api;
pub mod app;
pub mod cli;
pub mod client;
#[cfg(feature = "cluster")]
pub(crate) mod cluster;
pub mod config;
pub mod dns;
pub mod duration;
pub mod health;
pub(crate) mod hosts;
pub mod manual;
pub mod metrics;
pub mod model;
pub mod registry;
pub mod secret;
pub mod store;
pub mod systemd;
pub mod tls;
pub(crate) mod watch;
pub mod zones;
