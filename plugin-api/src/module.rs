//! The root module: the one thing a plugin library exports.

use std::time::Duration;

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_trait::TD_Opaque,
    sabi_types::VersionStrings,
    std_types::{RResult, RStr},
};

use crate::{
    Deadline, HostServicesRef, Logger, PluginError, Writer, v1_0,
    writer::{AbiWriter_TO, Guarded, WriterBox, guard},
};

/// The root module every plugin exports (through [`crate::export_plugin!`]).
///
/// A prefix type. Its first three fields are plugin-api 1.0's root module,
/// unchanged, so that a 1.0 host loads a newer plugin and calls
/// `open_writer` (see [`crate::v1_0`]). Each later minor version adds one
/// field at the end, read by the host as an `Option`.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(option))]
pub struct PluginModule {
    /// The plugin's name, such as `"mysql"`, for the host's log.
    pub name: RStr<'static>,
    /// The plugin's own version (its crate version), for the host's log.
    pub version: RStr<'static>,
    /// Opens a 1.0 writer (upserts only), for 1.0 hosts.
    ///
    /// - `settings_json`: the config's `database` object, as JSON text,
    ///   `type` included. Each plugin defines and checks its own settings.
    /// - `config_dir`: the folder of the config file, against which relative
    ///   paths in the settings are resolved.
    /// - `host`: the host's services, such as its log.
    #[sabi(last_prefix_field)]
    pub open_writer: extern "C" fn(
        settings_json: RStr<'_>,
        config_dir: RStr<'_>,
        host: HostServicesRef,
    ) -> RResult<v1_0::WriterBox, PluginError>,
    /// Since 1.1: opens a writer with write actions, partial rows, DATE and
    /// BYTES, and a deadline on each call. The same arguments as
    /// `open_writer`, and the deadline of the open itself.
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
    // The version of this crate, which is the ABI version.
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The version of plugin-api this code was built with: the ABI version.
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A plugin: its name, and how it opens a [`Writer`] from its settings.
pub trait Plugin {
    /// The plugin's name, usually its `database.type` (`"sqlite"`).
    const NAME: &'static str;
    /// The plugin's version; use `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// The writer this plugin opens.
    type Writer: Writer;

    /// Opens a writer from the `database` section of the config.
    ///
    /// Check every setting here and say precisely what is wrong, naming the
    /// setting as `database.<name>`: the host prints it as the reason it
    /// cannot start.
    fn open(settings_json: &str, context: &OpenContext<'_>) -> Result<Self::Writer, PluginError>;
}

/// What the host tells a plugin when it opens a writer, besides its settings.
///
/// `#[non_exhaustive]`: later versions add fields; read the ones you need.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct OpenContext<'a> {
    /// The folder of the config file: resolve relative paths against it.
    pub config_dir: &'a str,
    /// The host's log.
    pub log: Logger,
    /// The bound on the open itself: connecting, logging in, checking.
    pub deadline: Deadline,
}

impl<'a> OpenContext<'a> {
    /// A context, for tests of a plugin's `open` outside a host.
    pub fn new(config_dir: &'a str, log: Logger, deadline: Deadline) -> Self {
        Self { config_dir, log, deadline }
    }
}

/// The deadline of an open from a 1.0 host, which sends none.
const OPEN_FROM_A_1_0_HOST: Duration = Duration::from_secs(3600);

fn open<P: Plugin>(
    settings_json: RStr<'_>,
    config_dir: RStr<'_>,
    host: HostServicesRef,
    deadline: Deadline,
) -> Result<Guarded<P::Writer>, PluginError> {
    let context = OpenContext { config_dir: config_dir.as_str(), log: Logger::new(host), deadline };
    P::open(settings_json.as_str(), &context).map(Guarded::new)
}

extern "C" fn open_writer_v1_0<P: Plugin>(
    settings_json: RStr<'_>,
    config_dir: RStr<'_>,
    host: HostServicesRef,
) -> RResult<v1_0::WriterBox, PluginError> {
    guard("open", || {
        let writer = open::<P>(settings_json, config_dir, host, Deadline::after(OPEN_FROM_A_1_0_HOST))?;
        Ok(v1_0::AbiWriter_TO::from_value(writer, TD_Opaque))
    })
}

extern "C" fn open_writer_v1_1<P: Plugin>(
    settings_json: RStr<'_>,
    config_dir: RStr<'_>,
    host: HostServicesRef,
    deadline: Deadline,
) -> RResult<WriterBox, PluginError> {
    guard("open", || Ok(AbiWriter_TO::from_value(open::<P>(settings_json, config_dir, host, deadline)?, TD_Opaque)))
}

/// Builds the root module for `P`. Called by [`crate::export_plugin!`].
#[doc(hidden)]
pub fn root_module_for<P: Plugin>() -> PluginModuleRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    PluginModule {
        name: RStr::from_str(P::NAME),
        version: RStr::from_str(P::VERSION),
        open_writer: open_writer_v1_0::<P>,
        open_writer_v1_1: open_writer_v1_1::<P>,
    }
    .leak_into_prefix()
}

/// Exports a [`Plugin`] as this library's root module.
///
/// Use it once, at the top level of a `cdylib` crate that also depends on
/// `abi_stable` (the export attribute refers to it by name):
///
/// ```ignore
/// his_plugin_api::export_plugin!(MyPlugin);
/// ```
///
/// It refuses to compile with `panic = "abort"`: the host relies on a
/// plugin's panics unwinding into the guard around every call, and with
/// `abort` a panic would end the whole middleware instead.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(panic = "abort")]
        compile_error!(
            "his-plugin-api: a plugin must be built with panic = \"unwind\" (the default). With panic = \"abort\" \
             one panic in the plugin would stop the whole middleware; remove `panic = \"abort\"` from the profile."
        );

        /// The root module of this plugin, read by the host when it loads
        /// the library.
        #[::abi_stable::export_root_module]
        pub fn his_plugin_root_module() -> $crate::PluginModuleRef {
            $crate::root_module_for::<$plugin>()
        }
    };
}

/// The file name of the plugin for `database_type` on this platform:
/// `libhis_mysql.so`, `his_mysql.dll` or `libhis_mysql.dylib`.
pub fn library_file_name(database_type: &str) -> String {
    format!("{}his_{}{}", std::env::consts::DLL_PREFIX, database_type, std::env::consts::DLL_SUFFIX)
}
