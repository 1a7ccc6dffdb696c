//! plugin-api 1.0's boundary types, frozen: the host loads 1.0 plugins
//! through them, and every plugin still exports them for 1.0 hosts.
//!
//! Their layouts are exactly those plugin-api 1.0.0 released (the copy in
//! `tests/fixtures/abi-1.0/plugin-api` is the original, and a test loads a
//! plugin built against it). Never change anything here: a 1.x host
//! compares these layouts with a 1.0 plugin's, field by field.
//!
//! What changed in 1.1, and why these stay:
//! - [`Value`] gained DATE and BYTES: the 1.1 [`crate::Value`] is a new type.
//! - [`UpsertBatch`] became [`crate::WriteBatch`], with an action and
//!   partial rows.
//! - [`AbiWriter`] became [`crate::AbiWriter`], with a deadline on each call.
//! - [`PluginModule`] is the first three fields of [`crate::PluginModule`].
//!
//! [`ErrorKind`](crate::ErrorKind), [`PluginError`](crate::PluginError),
//! [`TableDescription`](crate::TableDescription) and
//! [`HostServices`](crate::HostServices) did not change and are shared.

// `#[sabi_trait]` expands to impls inside a const block, which rustc flags.
#![allow(non_local_definitions)]

mod convert;
mod types;

pub use self::{
    convert::{from_write_batch, to_write_batch},
    types::{AbiWriter, AbiWriter_TO, PluginModule, PluginModuleRef, UpsertBatch, Value, WriterBox},
};
