//! The root module: the one thing a plugin library exports.

use std::time::Duration;

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_trait::TD_Opaque,
    sabi_types::VersionStrings,
    std_types::{RResult, RSlice, RStr, RVec},
};

use crate::{
    Deadline, ErrorKind, HostServicesRef, Logger, PluginError, Statement, WriteBatch, Writer, v1_0,
    writer::{AbiWriter_TO, AbiWriterV1_2_TO, Guarded, WriterBox, WriterBoxV1_2, guard},
};

/// The root module every plugin exports (through [`crate::export_plugin!`]).
///
/// A prefix type. Its first three fields are plugin-api 1.0's root module,
/// unchanged, so that a 1.0 host loads a newer plugin and calls
/// `open_writer` (see [`crate::v1_0`]); its first four are 1.1's (see
/// [`crate::v1_1`]). Each later minor version adds fields at the end, read
/// by the host as `Option`s.
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
    /// Since 1.2: opens a writer that also writes several batches in one
    /// transaction ([`Writer::write_all`]). The same arguments as
    /// `open_writer_v1_1`.
    pub open_writer_v1_2: extern "C" fn(
        settings_json: RStr<'_>,
        config_dir: RStr<'_>,
        host: HostServicesRef,
        deadline: Deadline,
    ) -> RResult<WriterBoxV1_2, PluginError>,
    /// Since 1.2: the statements the plugin would run for `batches`, in
    /// one transaction, without connecting to any database
    /// ([`Plugin::render`]), for `buktor-middleware map --sql`.
    pub render_v1_2: extern "C" fn(
        settings_json: RStr<'_>,
        config_dir: RStr<'_>,
        batches: RSlice<'_, WriteBatch>,
    ) -> RResult<RVec<Statement>, PluginError>,
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

    /// The statements [`Writer::write_all`] would run for `batches` (one
    /// batch, or several in one transaction), with their parameters as the
    /// plugin would bind them, shown as text: what `buktor-middleware map
    /// --sql` prints. Since plugin-api 1.2.
    ///
    /// It must not connect to any database, nor touch any file: it runs
    /// where the HIS may not be reachable. Check the settings as `open`
    /// does. A statement that depends on what the database holds (a
    /// dictionary lookup, a row that exists or not) is shown as the plugin
    /// would run it in the common case, and its docs say so.
    ///
    /// The default answers a permanent [`ErrorKind::UNSUPPORTED`] error:
    /// this plugin does not show its statements.
    fn render(settings_json: &str, config_dir: &str, batches: &[WriteBatch]) -> Result<Vec<Statement>, PluginError> {
        let _ = (settings_json, config_dir, batches);
        Err(PluginError::permanent(ErrorKind::UNSUPPORTED, "this plugin does not show its statements"))
    }
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

extern "C" fn open_writer_v1_2<P: Plugin>(
    settings_json: RStr<'_>,
    config_dir: RStr<'_>,
    host: HostServicesRef,
    deadline: Deadline,
) -> RResult<WriterBoxV1_2, PluginError> {
    guard("open", || Ok(AbiWriterV1_2_TO::from_value(open::<P>(settings_json, config_dir, host, deadline)?, TD_Opaque)))
}

extern "C" fn render_v1_2<P: Plugin>(
    settings_json: RStr<'_>,
    config_dir: RStr<'_>,
    batches: RSlice<'_, WriteBatch>,
) -> RResult<RVec<Statement>, PluginError> {
    guard("render", || P::render(settings_json.as_str(), config_dir.as_str(), batches.as_slice()).map(RVec::from))
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
        open_writer_v1_2: open_writer_v1_2::<P>,
        render_v1_2: render_v1_2::<P>,
    }
    .leak_into_prefix()
}

/// Exports a [`Plugin`] as this library's root module.
///
/// The root module carries every version's entry points: `open_writer`
/// for 1.0 hosts, `open_writer_v1_1` for 1.1 hosts, `open_writer_v1_2` and
/// `render_v1_2` for 1.2 hosts; each wraps the same [`Plugin`] and
/// [`Writer`], and runs inside [`guard`](crate::guard).
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

#[cfg(test)]
mod tests {
    use abi_stable::{
        StableAbi,
        abi_stability::abi_checking::check_layout_compatibility,
        prefix_type::PrefixTypeTrait,
        std_types::{ROption, RString},
    };

    use super::*;
    use crate::{Action, Actions, HostServices, LogLevel, TableDescription, Value, v1_1};

    struct Counting;

    /// Counts rows; several batches in one transaction are counted, or
    /// none when one of them is refused.
    struct CountingWriter(usize);

    impl Plugin for Counting {
        const NAME: &'static str = "counting";
        const VERSION: &'static str = "0.0.1";
        type Writer = CountingWriter;

        fn open(_: &str, _: &OpenContext<'_>) -> Result<CountingWriter, PluginError> {
            Ok(CountingWriter(0))
        }

        fn render(settings_json: &str, _: &str, batches: &[WriteBatch]) -> Result<Vec<Statement>, PluginError> {
            if settings_json != "{}" {
                return Err(PluginError::setting("x", "unknown setting"));
            }
            Ok(batches
                .iter()
                .map(|b| Statement::new(format!("COUNT {}", b.table()), [b.row_count().to_string()]))
                .collect())
        }
    }

    impl Writer for CountingWriter {
        fn write(&mut self, batch: &WriteBatch, deadline: Deadline) -> Result<(), PluginError> {
            self.write_all(std::slice::from_ref(batch), deadline)
        }
        fn write_all(&mut self, batches: &[WriteBatch], _: Deadline) -> Result<(), PluginError> {
            self.0 += batches.iter().map(WriteBatch::row_count).sum::<usize>();
            Ok(())
        }
        fn ping(&mut self, _: Deadline) -> Result<(), PluginError> {
            Ok(())
        }
        fn describe_table(&mut self, _: &str, _: Deadline) -> Result<Option<TableDescription>, PluginError> {
            // The count, as a table name: what the tests read back.
            Ok(Some(TableDescription {
                name: self.0.to_string().into(),
                columns: Default::default(),
                primary_key: Default::default(),
                unique_keys: Default::default(),
            }))
        }
        fn actions(&self) -> Actions {
            Actions::ALL_1_1
        }
        fn writes_batches_together(&self) -> bool {
            true
        }
    }

    extern "C" fn no_log(_: LogLevel, _: RStr<'_>, _: RStr<'_>) {}

    fn host() -> HostServicesRef {
        HostServices { max_log_level: LogLevel::ERROR, log: no_log }.leak_into_prefix()
    }

    fn batch(table: &str, rows: i64) -> WriteBatch {
        let values = (0..rows).map(Value::int).collect();
        WriteBatch::new(
            table,
            Action::UPSERT,
            vec![RString::from("id")].into(),
            vec![RString::from("id")].into(),
            values,
        )
    }

    fn soon() -> Deadline {
        Deadline::after(Duration::from_secs(5))
    }

    #[test]
    fn each_version_opens_the_same_writer_and_1_2_writes_batches_together() {
        let module = root_module_for::<Counting>();
        let (settings, dir) = (RStr::from_str("{}"), RStr::from_str("."));
        let count =
            |described: RResult<ROption<TableDescription>, PluginError>| described.unwrap().unwrap().name.to_string();

        let mut v1_1 = (module.open_writer_v1_1().unwrap())(settings, dir, host(), soon()).unwrap();
        v1_1.write(&batch("a", 2), soon()).unwrap();
        assert_eq!(count(v1_1.describe_table(RStr::from_str("a"), soon())), "2");

        let open = module.open_writer_v1_2().expect("a 1.2 module has open_writer_v1_2");
        let mut v1_2 = open(settings, dir, host(), soon()).unwrap();
        assert!(v1_2.writes_batches_together());
        v1_2.write_all([batch("a", 2), batch("b", 3)].as_slice().into(), soon()).unwrap();
        v1_2.write(&batch("a", 1), soon()).unwrap();
        assert_eq!(count(v1_2.describe_table(RStr::from_str("a"), soon())), "6");
    }

    #[test]
    fn render_crosses_the_boundary_and_its_default_says_it_is_unsupported() {
        let module = root_module_for::<Counting>();
        let render = module.render_v1_2().expect("a 1.2 module has render_v1_2");
        let batches = [batch("a", 2), batch("b", 3)];
        let shown = render(RStr::from_str("{}"), RStr::from_str("."), batches.as_slice().into()).unwrap();
        assert_eq!(shown.as_slice(), [Statement::new("COUNT a", ["2"]), Statement::new("COUNT b", ["3"])]);
        let e = render(RStr::from_str("{\"x\": 1}"), RStr::from_str("."), batches.as_slice().into()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::CONFIG);

        struct Silent;
        impl Plugin for Silent {
            const NAME: &'static str = "silent";
            const VERSION: &'static str = "0.0.1";
            type Writer = CountingWriter;
            fn open(_: &str, _: &OpenContext<'_>) -> Result<CountingWriter, PluginError> {
                Ok(CountingWriter(0))
            }
        }
        let render = root_module_for::<Silent>().render_v1_2().unwrap();
        let e = render(RStr::from_str("{}"), RStr::from_str("."), batches.as_slice().into()).unwrap_err();
        assert_eq!((e.kind, e.retryable), (ErrorKind::UNSUPPORTED, false));
        assert_eq!(e.message.as_str(), "this plugin does not show its statements");
    }

    #[test]
    fn older_hosts_accept_this_root_module_and_its_type_refuses_a_1_1_one() {
        // What a 1.1 host (and a 1.0 host) checks when it loads a plugin of
        // this version: its own, frozen, root module type against ours.
        let current = <PluginModuleRef as StableAbi>::LAYOUT;
        check_layout_compatibility(<v1_1::PluginModuleRef as StableAbi>::LAYOUT, current)
            .unwrap_or_else(|e| panic!("a 1.1 host refuses this root module: {e}"));
        check_layout_compatibility(<v1_0::PluginModuleRef as StableAbi>::LAYOUT, current)
            .unwrap_or_else(|e| panic!("a 1.0 host refuses this root module: {e}"));
        // And why the host keeps 1.1's type: its own refuses a 1.1 module.
        let older = check_layout_compatibility(current, <v1_1::PluginModuleRef as StableAbi>::LAYOUT);
        assert!(older.is_err(), "this root module type accepts a 1.1 module");
    }
}
