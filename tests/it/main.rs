//! Integration tests: the real server on port 0, real sockets, real peers.

mod support;

mod acl;
mod acl_clients;
mod api;
mod api_reads;
mod binary;
mod catalog;
mod cli;
mod clients;
mod clients_catalog;
#[cfg(feature = "cluster")]
mod cluster;
#[cfg(feature = "cluster")]
mod cluster_catalog;
#[cfg(feature = "cluster")]
mod cluster_faults;
#[cfg(feature = "cluster")]
mod cluster_secure;
mod consul_names;
mod crash;
mod dig;
mod dns_names;
mod dnssd;
mod dnssd_avahi;
mod docker;
mod edns;
#[cfg(feature = "cluster")]
mod etcd;
mod examples;
mod filter;
mod flood;
mod forward;
mod health;
mod hosts;
mod limits;
mod malformed;
mod metrics;
mod negative;
mod ops;
mod package;
mod pki;
mod protocol;
mod readme;
mod readme_catalog;
mod readme_security;
mod regions;
mod rotation;
mod rrl;
mod rules;
mod sizes;
mod systemd;
mod tls;
mod transfer;
mod truncation;
mod ui;
mod ui_browser;
mod zones_reload;
