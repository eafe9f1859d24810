//! Integration tests: the real server on port 0, real sockets, real peers.

mod support;

mod binary;
mod dig;
mod readme;
mod zones_reload;
