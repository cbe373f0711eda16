//! The store: the port and its records are `kombinat_core::store` (re-exported here); this
//! module adds what touches the disk: [`SledStore`] (sled 0.34.7, sized for a Raspberry Pi),
//! the free-space reserve, the restore of a backup into a directory, and writing the store anew
//! after an erasure ([`rewrite`]).

pub mod rewrite;
mod sled_store;
#[cfg(test)]
mod sled_tests;

pub use kombinat_core::store::*;
pub use sled_store::{free_bytes, keep_reserve, SledStore};
