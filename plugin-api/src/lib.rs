//! # his-plugin-api: the contract between buktor-middleware and its plugins
//!
//! buktor-middleware receives Buktor's webhook events, journals them, and
//! hands them as rows to a *writer plugin*: a dynamic library, loaded at run
//! time, that writes into one kind of HIS database. This crate is the only
//! code both sides share. Everything that crosses the boundary is defined
//! here, with `abi_stable` types, so that a host and a plugin built at
//! different times, by different people, still agree on every byte.
//!
//! ## Map of the crate
//! - [`module`]: [`PluginModule`], the root module a library exports; the
//!   [`Plugin`] trait a plugin implements; [`export_plugin!`].
//! - [`writer`]: [`Writer`], what a plugin implements to write rows (one
//!   batch, or several in one transaction: [`Writer::write_all`]);
//!   [`AbiWriterV1_2`], its boundary form ([`AbiWriter`]: 1.1's), and the
//!   panic guard.
//! - [`batch`]: [`WriteBatch`], rows for one table and the [`Action`] to
//!   apply (upsert, insert, update, delete, soft-delete), with partial rows.
//! - [`deadline`]: [`Deadline`], the bound on every call.
//! - [`value`]: [`Value`], one typed field value; [`timestamp`]: the one
//!   timestamp format the host sends, and its parser.
//! - [`statement`]: [`Statement`], a statement a plugin would run, shown
//!   instead of run ([`Plugin::render`], since 1.2).
//! - [`v1_0`]: plugin-api 1.0's boundary types, frozen, through which a
//!   host loads 1.0 plugins and a 1.0 host loads newer ones.
//! - [`v1_1`]: plugin-api 1.1's root module, frozen, through which a host
//!   loads 1.1 plugins.
//! - [`error`]: [`PluginError`] and its [`ErrorKind`]s.
//! - [`describe`]: [`TableDescription`], what a writer reports of a table.
//! - [`host`]: [`HostServices`] and [`Logger`], the host's log for plugins.
//! - `settings` (feature `settings`): `parse_settings`, the `database`
//!   section into a plugin's own serde struct, errors naming the setting.
//! - `zone` (feature `chrono`): `HisZone`, the HIS's time zone, and
//!   timestamps turned into its wall-clock time.
//!
//! ## Writing a plugin
//! A plugin is a `cdylib` crate named `his_<type>`, where `<type>` is the
//! `database.type` that selects it. It depends on this crate and on
//! `abi_stable` (same version as this crate uses):
//!
//! ```toml
//! [lib]
//! name = "his_jsonl"
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! his-plugin-api = "1"
//! abi_stable = "0.11"
//! ```
//!
//! Then it implements [`Plugin`] and [`Writer`], and exports them:
//!
//! ```
//! use his_plugin_api::{
//!     Actions, Deadline, OpenContext, Plugin, PluginError, TableDescription, WriteBatch, Writer,
//! };
//!
//! pub struct CountingPlugin;
//!
//! /// Counts rows instead of writing them: the smallest complete writer.
//! pub struct CountingWriter {
//!     rows: usize,
//! }
//!
//! impl Plugin for CountingPlugin {
//!     const NAME: &'static str = "counting";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     type Writer = CountingWriter;
//!
//!     fn open(_settings_json: &str, context: &OpenContext<'_>) -> Result<CountingWriter, PluginError> {
//!         context.log.info("counting writer ready");
//!         Ok(CountingWriter { rows: 0 })
//!     }
//! }
//!
//! impl Writer for CountingWriter {
//!     fn write(&mut self, batch: &WriteBatch, _deadline: Deadline) -> Result<(), PluginError> {
//!         self.rows += batch.row_count();
//!         Ok(())
//!     }
//!     fn ping(&mut self, _deadline: Deadline) -> Result<(), PluginError> {
//!         Ok(())
//!     }
//!     fn describe_table(&mut self, _table: &str, _deadline: Deadline) -> Result<Option<TableDescription>, PluginError> {
//!         Ok(None)
//!     }
//!     fn actions(&self) -> Actions {
//!         Actions::ALL_1_1 // counting works for every action
//!     }
//! }
//!
//! // In the plugin's lib.rs: his_plugin_api::export_plugin!(CountingPlugin);
//! ```
//!
//! `plugins/sqlite` in this repository is the reference plugin: read it
//! next. Rules every plugin keeps:
//! - Settings are the config's `database` object as JSON. Reject unknown
//!   settings, and name the setting (`database.port`) in every error.
//! - Bind every value; never paste one into SQL. Quote identifiers for your
//!   dialect even though they come from the operator's config.
//! - Classify every error as retryable or permanent, and keep the
//!   database's own message and code in it ([`PluginError`]).
//! - Wait for another session's lock at most `database.lock_timeout_secs`
//!   (default 5, below the statement timeout; `check_lock_timeout`, feature
//!   `settings`, checks it), and report that wait, a deadlock or a busy
//!   file as a retryable [`ErrorKind::CONFLICT`]: the host holds back only
//!   the rows involved. Never let a lock wait run into the statement
//!   timeout: [`ErrorKind::TIMEOUT`] makes the host back off as a whole.
//! - Keep every call's [`Deadline`]: bound your statements by it, and when
//!   it runs out roll back and return [`PluginError::deadline_exceeded`].
//! - Carry out every [`Action`] you list in [`Writer::actions`], and leave a
//!   partial row's absent columns untouched ([`WriteBatch::column_sets`]).
//! - Own your runtime: if your driver is async, start your own runtime in
//!   `open` and block on it in the writer's methods.
//! - Log through [`Logger`]; your own `log`/`tracing` globals reach nobody.
//!
//! `plugins/template` is the same in one file, with no database: it
//! appends each row as a JSON line. Copy it to start.
//!
//! ## Testing a plugin: the conformance kit
//! `buktor-middleware plugin-test` loads your library and checks what the
//! host relies on: it loads, opens and pings; upserts, a row with every
//! [`ValueKind`], a batch of 70,000 values (more than one statement of most
//! databases takes); every [`Action`] (insert, update with each
//! [`IfMissing`], delete, soft delete) and a batch of partial rows; that a
//! refused batch commits none of its rows, and that each DATA error names
//! its row ([`PluginError::row`]); a write to an unknown table fails as a
//! permanent [`ErrorKind::SCHEMA`] error; a timestamp with an offset, a
//! 38-digit decimal and a date are stored as what they are; two tables
//! written in one transaction by [`Writer::write_all`] (1.2: both commit,
//! or a refused row in the second batch leaves none of the first's, and
//! the error names the row across the batches); describe, close, and a
//! second writer opened in the same process. It prints one
//! line per check, `pass`, `FAIL` or `n/v` (not verified: the kit could not
//! observe it, and says why), and exits non-zero if any failed (`--json`
//! for a report to parse, whose `outcome` is `pass`, `fail` or
//! `not_verified`). Run it in your CI against a throwaway database:
//!
//! ```sh
//! cargo build --release
//! buktor-middleware --config ci/his-config.json plugin-test \
//!     --plugin target/release/libhis_acme.so \
//!     --unreachable-config ci/his-config.down.json
//! ```
//!
//! The config is an ordinary his-config.json; only its `database` section
//! is used. The kit writes to the table `buktor_conformance` (or the one
//! `--table NAME` names) and to the same name with `_values`, and never
//! creates them: if one is missing, the first failed write to it prints
//! the `CREATE TABLE` for sqlite, mysql, sqlserver, oracle and postgres
//! (or the columns, for another database) to run first.
//!
//! The plugin ABI cannot read rows back, so the kit observes through the
//! actions' own rules: an insert of a key that has a row must be refused
//! with a DATA error, so after each action an insert of the key it touched
//! tells whether that key has a row. In the `_values` table, keyed by the
//! values themselves, two values that must stay two (an offset dropped, a
//! decimal rounded through a float) or be one (a date shifted by a time
//! zone, met by the same day sent as text) show as a collision or its
//! absence. A plugin that refuses nothing (a log, as plugins/template)
//! gets "not verified" for those checks, never "pass". What no key can
//! show, such as a partial row leaving its absent columns alone, the
//! detail names: let your CI query the table for it.
//!
//! Nor can the kit cut a connection: `--unreachable-config` names a second
//! config whose `database` is not there (a host nothing listens on), and
//! the first of open, ping or a write that fails must fail as retryable;
//! without it, that check is not verified. Nor can it make your plugin
//! panic: `export_plugin!` guards every entry point, and the kit says so
//! rather than claiming a test.
//!
//! ## Versioning: which host loads which plugin
//! This crate's version is the ABI version. **Build your plugin against the
//! oldest plugin-api that has what it needs; every newer 1.x host loads
//! it.** A host also loads plugins built against a newer 1.x than its own,
//! and uses what it knows of them. Only a new major version (2.0) breaks
//! that, and a host says so in one line naming both versions.
//!
//! How that holds, for whoever changes this crate:
//! - Nothing that crosses the boundary ever changes in 1.x. abi_stable
//!   compares a plugin's types with the host's, field by field, when it
//!   loads: every type reachable from the root module of a released
//!   version is frozen ([`v1_0`] keeps 1.0's).
//! - A minor version adds fields at the end of [`PluginModule`]: 1.2
//!   added `open_writer_v1_2`, returning a new writer trait
//!   ([`AbiWriterV1_2`]: 1.1's methods, [`Writer::write_all`] and
//!   [`Writer::writes_batches_together`]), and `render_v1_2`
//!   ([`Plugin::render`]), with new types for whatever is new
//!   ([`Statement`]). Old fields stay, so an older host loads the plugin
//!   through them.
//! - The host keeps the root module type of each earlier minor version
//!   and loads a plugin with the one of the plugin's version (1.0 plugins
//!   through [`v1_0::PluginModuleRef`], 1.1 plugins through
//!   [`v1_1::PluginModuleRef`]): abi_stable refuses a library whose root
//!   module is older than the host's type. The host adapts older writers
//!   to its own calls, and refuses at startup a mapping that needs what
//!   the plugin's version lacks, naming the mapping.
//! - New codes ([`ValueKind`], [`ErrorKind`], [`LogLevel`], [`Action`]) may
//!   appear in a minor version; a plugin meets them as `Unknown`. The host
//!   never sends a plugin a kind or action its version lacks.
//! - A patch version (1.1.1) changes no type that crosses the boundary.
//!
//! A plugin built with `panic = "abort"` does not compile
//! ([`export_plugin!`] says why): the guard around every call needs
//! unwinding.
#![warn(missing_docs)]

pub mod batch;
pub mod deadline;
pub mod describe;
pub mod error;
pub mod host;
pub mod module;
#[cfg(feature = "settings")]
pub mod settings;
pub mod statement;
pub mod timestamp;
pub mod v1_0;
pub mod v1_1;
pub mod value;
pub mod writer;
#[cfg(feature = "chrono")]
pub mod zone;

pub use batch::{Action, Actions, ColumnSet, IfMissing, WriteAction, WriteBatch};
pub use deadline::Deadline;
pub use describe::{ColumnDescription, KeyColumns, TableDescription};
pub use error::{ErrorKind, PluginError};
pub use host::{HostServices, HostServicesRef, LogLevel, Logger};
pub use module::{ABI_VERSION, OpenContext, Plugin, PluginModule, PluginModuleRef, library_file_name, root_module_for};
#[cfg(feature = "settings")]
pub use settings::{DEFAULT_LOCK_TIMEOUT_SECS, check_lock_timeout, parse_settings};
pub use statement::Statement;
pub use timestamp::Timestamp;
pub use value::{Value, ValueKind, ValueRef, is_date};
pub use writer::{AbiWriter, AbiWriter_TO, AbiWriterV1_2, AbiWriterV1_2_TO, Writer, WriterBox, WriterBoxV1_2, guard};
#[cfg(feature = "chrono")]
pub use zone::HisZone;
