//! plugin-api 1.1's root module, frozen: the host loads 1.1 plugins
//! through it (abi_stable refuses a library whose root module has fewer
//! fields than the host's type, so a 1.2 host cannot use its own).
//!
//! Its layout is exactly the one plugin-api 1.1.0 released (the copy in
//! `tests/fixtures/abi-1.1/plugin-api` is the original, and a test loads a
//! plugin built against it). Never change anything here.
//!
//! What changed in 1.2, and why this stays:
//! - [`crate::PluginModule`] added `open_writer_v1_2` (a writer with
//!   [`crate::Writer::write_all`]) and `render_v1_2` at its end.
//!
//! The 1.1 writer, [`crate::AbiWriter`] and [`crate::WriterBox`], did not
//! change and is shared, as are every type it reaches ([`crate::WriteBatch`],
//! [`crate::Value`], [`crate::PluginError`], …).

// `#[sabi_trait]` and the prefix type expand to impls inside const blocks.
#![allow(non_local_definitions, missing_docs)]

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    sabi_types::VersionStrings,
    std_types::{RResult, RStr},
};

use crate::{Deadline, HostServicesRef, PluginError, WriterBox, v1_0};

/// plugin-api 1.1's root module.
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
    ) -> RResult<v1_0::WriterBox, PluginError>,
    pub open_writer_v1_1: extern "C" fn(
        settings_json: RStr<'_>,
        config_dir: RStr<'_>,
        host: HostServicesRef,
        deadline: Deadline,
    ) -> RResult<WriterBox, PluginError>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}

    const BASE_NAME: &'static str = "his_plugin";
    const NAME: &'static str = "Buktor HIS plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.1.0");
}
