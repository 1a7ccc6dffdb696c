//! The root module: the one thing a plugin library exports.

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_trait::TD_Opaque,
    sabi_types::VersionStrings,
    std_types::{RResult, RStr},
};

use crate::{
    HostServicesRef, Logger, PluginError, Writer,
    writer::{AbiWriter_TO, Guarded, WriterBox, guard},
};

/// The root module every plugin exports (through [`crate::export_plugin!`]).
///
/// A prefix type: fields may be added after the last prefix field in a minor
/// ABI version, and read by the host as `Option`s.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(option))]
pub struct PluginModule {
    /// The plugin's name, such as `"mysql"`, for the host's log.
    pub name: RStr<'static>,
    /// The plugin's own version (its crate version), for the host's log.
    pub version: RStr<'static>,
    /// Opens a writer.
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
#[derive(Debug, Clone, Copy)]
pub struct OpenContext<'a> {
    /// The folder of the config file: resolve relative paths against it.
    pub config_dir: &'a str,
    /// The host's log.
    pub log: Logger,
}

extern "C" fn open_writer<P: Plugin>(
    settings_json: RStr<'_>,
    config_dir: RStr<'_>,
    host: HostServicesRef,
) -> RResult<WriterBox, PluginError> {
    guard("open", || {
        let context = OpenContext { config_dir: config_dir.as_str(), log: Logger::new(host) };
        let writer = P::open(settings_json.as_str(), &context)?;
        Ok(AbiWriter_TO::from_value(Guarded::new(writer), TD_Opaque))
    })
}

/// Builds the root module for `P`. Called by [`crate::export_plugin!`].
#[doc(hidden)]
pub fn root_module_for<P: Plugin>() -> PluginModuleRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    PluginModule { name: RStr::from_str(P::NAME), version: RStr::from_str(P::VERSION), open_writer: open_writer::<P> }
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
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
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
