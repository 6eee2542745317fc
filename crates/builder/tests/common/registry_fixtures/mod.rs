//! Fixtures of the registry tests: a real docker-registry, images written and pushed by the
//! tests, a logging proxy and a token service. Included by `tests/registry.rs` with `#[path]`,
//! so other test binaries' `common/` modules stay their own.
#![allow(dead_code)]

pub mod image;
pub mod proxy;
pub mod pull;
pub mod server;
pub mod token;
