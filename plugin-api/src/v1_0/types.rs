//! The 1.0 types, as released. Do not edit (see the module docs).

// `#[sabi_trait]` expands to impls inside a const block, which rustc flags.
#![allow(non_local_definitions, missing_docs)]

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RStr, RString, RVec},
};

use crate::{HostServicesRef, PluginError, TableDescription, ValueKind};

/// plugin-api 1.0's value: 56 bytes, no DATE or BYTES.
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq, Debug)]
pub struct Value {
    pub(crate) kind: ValueKind,
    /// BOOL (0 or 1) and INT.
    pub(crate) int: i64,
    /// FLOAT.
    pub(crate) float: f64,
    /// DECIMAL, TEXT and TIMESTAMP.
    pub(crate) text: RString,
}

/// plugin-api 1.0's batch: rows to upsert into one table.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct UpsertBatch {
    pub table: RString,
    pub columns: RVec<RString>,
    pub key_columns: RVec<RString>,
    pub values: RVec<Value>,
}

/// plugin-api 1.0's writer.
#[sabi_trait]
pub trait AbiWriter: Send {
    fn upsert(&mut self, batch: &UpsertBatch) -> RResult<(), PluginError>;

    fn ping(&mut self) -> RResult<(), PluginError>;

    fn describe_table(&mut self, table: RStr<'_>) -> RResult<ROption<TableDescription>, PluginError>;

    #[sabi(last_prefix_field)]
    fn close(&mut self) -> RResult<(), PluginError>;
}

/// A 1.0 writer as a host holds it.
pub type WriterBox = AbiWriter_TO<'static, RBox<()>>;

/// plugin-api 1.0's root module.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(option))]
pub struct PluginModule {
    pub name: RStr<'static>,
    pub version: RStr<'static>,
    #[sabi(last_prefix_field)]
    pub open_writer: extern "C" fn(
        settings_json: RStr<'_>,
        config_dir: RStr<'_>,
        host: HostServicesRef,
    ) -> RResult<WriterBox, PluginError>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}

    const BASE_NAME: &'static str = "his_plugin";
    const NAME: &'static str = "Buktor HIS plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
