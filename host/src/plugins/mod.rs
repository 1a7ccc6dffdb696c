//! Finding and loading writer plugins. The only place that touches
//! abi_stable's loading.
//!
//! A plugin is loaded through the root module type of its own plugin-api
//! minor version: 1.0 plugins through the frozen
//! `his_plugin_api::v1_0::PluginModuleRef`, 1.1 plugins through the frozen
//! `his_plugin_api::v1_1::PluginModuleRef`, 1.2 and newer through today's
//! (abi_stable accepts a plugin whose root module has *more* fields than
//! the host's type, never fewer). [`writer`] then gives them all the same
//! calls.
//!
//! `database.type` = `mysql` selects the library `libhis_mysql.so`
//! (`his_mysql.dll`, `libhis_mysql.dylib`), looked for in `plugins.dir` if
//! the config sets it, then beside the executable. Every way this can fail
//! is one line that says what was looked for, where, what was found, and
//! the versions involved: abi_stable's own layout report runs to a thousand
//! lines and is never printed.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

mod watchdog;
pub mod writer;

use abi_stable::{
    library::{LibraryError, lib_header_from_path},
    sabi_types::VersionNumber,
    std_types::{RSlice, RStr},
};
use his_plugin_api::{
    ABI_VERSION, Actions, Deadline, ErrorKind, HostServices, HostServicesRef, LogLevel, PluginError, PluginModuleRef,
    Statement, WriteBatch, library_file_name, v1_0, v1_1,
};

pub use self::writer::HisWriter;

/// The plugin-api this host is built with: the types its plugins' calls
/// take ([`his_plugin_api::WriteBatch`], [`his_plugin_api::Value`], …),
/// for tools and tests that drive a loaded plugin.
pub use his_plugin_api as api;

/// Why no plugin could be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No file with the plugin's name in any searched folder.
    #[error("plugin for database.type {database_type:?} not found: looked for {file_name} in {}. Put {file_name} in one of these folders, or set plugins.dir to the folder that has it", list(.searched))]
    NotFound {
        /// `database.type`.
        database_type: String,
        /// The file name looked for.
        file_name: String,
        /// The folders searched, each with why it was searched.
        searched: Vec<(PathBuf, &'static str)>,
    },
    /// The file is not a loadable library for this platform.
    #[error("cannot load plugin {}: {detail}. Is it a plugin built for this platform and this buktor-middleware?", .path.display())]
    NotLoadable {
        /// The file.
        path: PathBuf,
        /// The system loader's message.
        detail: String,
    },
    /// A library, but not a Buktor HIS plugin.
    #[error("{} is not a Buktor HIS plugin: {detail}", .path.display())]
    NotAPlugin {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// A plugin built against an incompatible plugin-api.
    #[error("plugin {} was built against plugin-api {plugin_abi}, but this buktor-middleware uses plugin-api {host_abi}: {advice}", .path.display())]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// The plugin's plugin-api version.
        plugin_abi: String,
        /// The host's plugin-api version.
        host_abi: &'static str,
        /// What to do about it, with abi_stable's finding in brief.
        advice: String,
    },
}

fn list(searched: &[(PathBuf, &'static str)]) -> String {
    searched.iter().map(|(dir, why)| format!("{} ({why})", dir.display())).collect::<Vec<_>>().join(", ")
}

/// A loaded plugin library. Libraries are never unloaded.
pub struct Plugin {
    module: Module,
    /// The library file.
    pub path: PathBuf,
    /// The plugin's name, as it reports it.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The plugin-api version it was built against.
    pub abi_version: String,
}

/// A root module, through the type of the plugin's plugin-api version.
#[derive(Clone, Copy)]
enum Module {
    /// A plugin built against plugin-api 1.0.
    V1_0(v1_0::PluginModuleRef),
    /// A plugin built against plugin-api 1.1.
    V1_1(v1_1::PluginModuleRef),
    /// A plugin built against 1.2 or newer.
    Current(PluginModuleRef),
}

/// Finds the library for `database_type`.
pub fn find(database_type: &str, plugins_dir: Option<&Path>) -> Result<PathBuf, LoadError> {
    let file_name = library_file_name(database_type);
    let mut searched = Vec::new();
    if let Some(dir) = plugins_dir {
        searched.push((dir.to_path_buf(), "plugins.dir"));
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) {
        searched.push((dir, "beside the executable"));
    }
    searched
        .iter()
        .map(|(dir, _)| dir.join(&file_name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| LoadError::NotFound { database_type: database_type.to_string(), file_name, searched })
}

/// Finds and loads the plugin for `database_type`, checking that it speaks
/// this host's plugin-api.
pub fn load(database_type: &str, plugins_dir: Option<&Path>) -> Result<Plugin, LoadError> {
    load_path(&find(database_type, plugins_dir)?)
}

/// Loads the plugin library at `path` (whatever its name), checking that it
/// speaks this host's plugin-api. For `plugin-test`, which is given a file.
pub fn load_path(path: &Path) -> Result<Plugin, LoadError> {
    let path = path.to_path_buf();
    // Each library is loaded through its own header. (`RootModule::load_from_file`
    // would cache one module per type for the whole process.)
    let header = lib_header_from_path(&path).map_err(|e| explain(&path, "unknown".into(), e))?;
    let plugin_abi = header.version_strings().version.to_string();
    let version = check_version(&path, &plugin_abi)?;
    let explain = |e| explain(&path, plugin_abi.clone(), e);
    let (module, name, plugin_version) = match version.minor {
        0 => {
            let module = header.init_root_module::<v1_0::PluginModuleRef>().map_err(explain)?;
            (Module::V1_0(module), module.name(), module.version())
        }
        1 => {
            let module = header.init_root_module::<v1_1::PluginModuleRef>().map_err(explain)?;
            (Module::V1_1(module), module.name(), module.version())
        }
        _ => {
            let module = header.init_root_module::<PluginModuleRef>().map_err(explain)?;
            (Module::Current(module), module.name(), module.version())
        }
    };
    Ok(Plugin { module, path, name: name.to_string(), version: plugin_version.to_string(), abi_version: plugin_abi })
}

/// The versioning rule of plugin-api (see its crate docs): the same major
/// version; any minor version, older or newer than the host's.
fn check_version(path: &Path, plugin_abi: &str) -> Result<VersionNumber, LoadError> {
    let incompatible = |advice: String| LoadError::Incompatible {
        path: path.to_path_buf(),
        plugin_abi: plugin_abi.to_string(),
        host_abi: ABI_VERSION,
        advice,
    };
    let host = parse_version(ABI_VERSION).expect("plugin-api's own version parses");
    let Some(plugin) = parse_version(plugin_abi) else {
        return Err(incompatible("its version is not a semantic version".into()));
    };
    if plugin.major != host.major {
        let advice = if plugin.major > host.major {
            format!(
                "the plugin needs a buktor-middleware built with plugin-api {}.x. Upgrade the middleware, or use a plugin built against plugin-api {}.x",
                plugin.major, host.major
            )
        } else {
            format!(
                "a different major version. Use the {} plugin released with this buktor-middleware, or one rebuilt against plugin-api {}.x",
                path.file_name().unwrap_or_default().to_string_lossy(),
                host.major
            )
        };
        return Err(incompatible(advice));
    }
    Ok(plugin)
}

fn parse_version(text: &str) -> Option<VersionNumber> {
    let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
    Some(VersionNumber { major: parts.next()??, minor: parts.next()??, patch: parts.next()?? })
}

/// Turns abi_stable's error into one of ours, in one line.
fn explain(path: &Path, plugin_abi: String, error: LibraryError) -> LoadError {
    let path = path.to_path_buf();
    match error {
        LibraryError::OpenError { err, .. } => LoadError::NotLoadable { path, detail: err.to_string() },
        LibraryError::GetSymbolError { .. } => LoadError::NotAPlugin {
            path,
            detail: "it is a library, but exports no Buktor plugin root module (export_plugin!)".into(),
        },
        LibraryError::InvalidAbiHeader(header) => LoadError::Incompatible {
            path,
            plugin_abi,
            host_abi: ABI_VERSION,
            advice: format!(
                "it was built with abi_stable {}.{}, which this host cannot read. Rebuild it with abi_stable 0.11",
                header.abi_major, header.abi_minor
            ),
        },
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => LoadError::Incompatible {
            path,
            plugin_abi: actual_version.to_string(),
            host_abi: ABI_VERSION,
            advice: format!("abi_stable refused version {actual_version} (expected {expected_version})"),
        },
        LibraryError::AbiInstability(report) => {
            tracing::debug!("abi_stable's full layout report for {}:\n{report}", path.display());
            LoadError::Incompatible {
                path,
                plugin_abi,
                host_abi: ABI_VERSION,
                advice: format!(
                    "its types differ from this host's ({}). Rebuild the plugin against the plugin-api released with this buktor-middleware",
                    summarize_layout_report(&report.to_string())
                ),
            }
        }
        other => LoadError::NotAPlugin { path, detail: first_line(&other.to_string()) },
    }
}

/// The gist of abi_stable's layout report, in one line: how many
/// mismatches, and the first one with what was expected and found.
///
/// The report (about a thousand lines) lists each mismatch as
/// `Error:<what>`, then `Expected:` and `Found:`, each followed by an
/// indented value.
pub fn summarize_layout_report(report: &str) -> String {
    let lines: Vec<&str> = report.lines().collect();
    let errors: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].starts_with("Error:")).collect();
    let Some(&first) = errors.first() else {
        return "abi_stable: the root module's layout differs".into();
    };
    let what = lines[first].trim_start_matches("Error:").trim();
    let value_after = |label: &str| {
        lines[first..]
            .iter()
            .skip_while(|l| l.trim() != label)
            .nth(1)
            .map(|l| l.trim().chars().take(80).collect::<String>())
    };
    let detail = match (value_after("Expected:"), value_after("Found:")) {
        (Some(expected), Some(found)) => format!("{what} (expected {expected}, found {found})"),
        _ => what.to_string(),
    };
    // The type the mismatch is in: the last expected layout printed before
    // the first error, `type:Value` and its `mod:` path.
    let layout = lines[..first].iter().rposition(|l| l.trim() == "Layout of expected type:");
    let field = |name: &str| {
        layout.and_then(|at| {
            lines[at + 1..first].iter().find_map(|l| {
                let l = l.trim();
                l.strip_prefix(name).or_else(|| l.split_once(&format!(" {name}")).map(|(_, rest)| rest))
            })
        })
    };
    let detail = match (field("type:"), field("mod:")) {
        (Some(name), Some(module)) => format!("type {} ({module}): {detail}", name.trim()),
        (Some(name), None) => format!("type {}: {detail}", name.trim()),
        _ => detail,
    };
    match errors.len() {
        1 => format!("abi_stable: {detail}"),
        n => format!("abi_stable found {n} mismatches, first: {detail}"),
    }
}

fn first_line(text: &str) -> String {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default().chars().take(200).collect()
}

impl Plugin {
    /// Opens a writer with the config's `database` section, within
    /// `deadline`. Blocking: call it from a plain thread, never from an
    /// async task.
    pub fn open_writer(
        &self,
        settings_json: &str,
        config_dir: &Path,
        deadline: Deadline,
    ) -> Result<HisWriter, PluginError> {
        let config_dir = config_dir.to_string_lossy();
        let (settings, dir, host) =
            (RStr::from_str(settings_json), RStr::from_str(&config_dir), host_services(&self.name));
        watchdog::watch("opening the writer", deadline, || match self.module {
            Module::V1_0(module) => (module.open_writer())(settings, dir, host).into_result().map(HisWriter::V1_0),
            Module::V1_1(module) => {
                let open = module.open_writer_v1_1().expect("a plugin of plugin-api 1.1 has open_writer_v1_1");
                open(settings, dir, host, deadline).into_result().map(HisWriter::V1_1)
            }
            Module::Current(module) => {
                let open = module.open_writer_v1_2().expect("a plugin of plugin-api 1.2 or newer has open_writer_v1_2");
                open(settings, dir, host, deadline).into_result().map(HisWriter::V1_2)
            }
        })
    }

    /// The statements the plugin would run for `batches` (in one
    /// transaction), with their parameters as text, without connecting to
    /// any database: for `map --sql`. A plugin built against plugin-api
    /// 1.0 or 1.1 cannot show them: a permanent [`ErrorKind::UNSUPPORTED`]
    /// error, in one line naming its version; so can a newer plugin that
    /// does not implement `Plugin::render`.
    pub fn render(
        &self,
        settings_json: &str,
        config_dir: &str,
        batches: &[WriteBatch],
    ) -> Result<Vec<Statement>, PluginError> {
        let render = match self.module {
            Module::V1_0(_) | Module::V1_1(_) => None,
            Module::Current(module) => module.render_v1_2(),
        };
        let Some(render) = render else {
            return Err(PluginError::permanent(
                ErrorKind::UNSUPPORTED,
                format!(
                    "plugin {} {} was built against plugin-api {}, which cannot show its statements (that needs \
                     plugin-api 1.2); rebuild it against 1.2",
                    self.name, self.version, self.abi_version
                ),
            ));
        };
        let (settings, dir) = (RStr::from_str(settings_json), RStr::from_str(config_dir));
        render(settings, dir, RSlice::from_slice(batches)).into_result().map(Vec::from)
    }

    /// What this plugin's version can do whatever its writer says: a 1.0
    /// plugin upserts whole rows only. `None` when the writer decides.
    pub fn fixed_abilities(&self) -> Option<Actions> {
        match self.module {
            Module::V1_0(_) => Some(Actions::UPSERT),
            Module::V1_1(_) | Module::Current(_) => None,
        }
    }

    /// Whether this plugin's version lets it write several batches in one
    /// transaction, whatever its writer says: a 1.0 or 1.1 plugin cannot
    /// (`Some(false)`). `None` when the writer decides.
    pub fn fixed_batches_together(&self) -> Option<bool> {
        match self.module {
            Module::V1_0(_) | Module::V1_1(_) => Some(false),
            Module::Current(_) => None,
        }
    }
}

/// The plugin's name, for its log lines (one plugin per process).
static PLUGIN_NAME: OnceLock<String> = OnceLock::new();

/// The services handed to plugins, built once.
fn host_services(plugin_name: &str) -> HostServicesRef {
    static SERVICES: OnceLock<HostServicesRef> = OnceLock::new();
    let _ = PLUGIN_NAME.set(plugin_name.to_string());
    *SERVICES.get_or_init(|| {
        use abi_stable::prefix_type::PrefixTypeTrait;
        let max_log_level = match tracing::level_filters::LevelFilter::current() {
            f if f >= tracing::level_filters::LevelFilter::TRACE => LogLevel::TRACE,
            f if f >= tracing::level_filters::LevelFilter::DEBUG => LogLevel::DEBUG,
            f if f >= tracing::level_filters::LevelFilter::INFO => LogLevel::INFO,
            f if f >= tracing::level_filters::LevelFilter::WARN => LogLevel::WARN,
            _ => LogLevel::ERROR,
        };
        HostServices { max_log_level, log: plugin_log }.leak_into_prefix()
    })
}

/// The log callback: a plugin's line becomes a host tracing event.
extern "C" fn plugin_log(level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
    // Nothing may unwind back into the plugin.
    let _ = std::panic::catch_unwind(|| {
        let plugin = PLUGIN_NAME.get().map(String::as_str).unwrap_or("?");
        let (target, message) = (target.as_str(), message.as_str());
        match level {
            LogLevel::ERROR => {
                tracing::error!(target: "plugin", plugin, from = target, "{message}")
            }
            LogLevel::WARN => tracing::warn!(target: "plugin", plugin, from = target, "{message}"),
            LogLevel::INFO => tracing::info!(target: "plugin", plugin, from = target, "{message}"),
            LogLevel::DEBUG => {
                tracing::debug!(target: "plugin", plugin, from = target, "{message}")
            }
            _ => tracing::trace!(target: "plugin", plugin, from = target, "{message}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_plugin_api_rule() {
        let path = Path::new("libhis_x.so");
        assert!(check_version(path, ABI_VERSION).is_ok());
        let host = parse_version(ABI_VERSION).unwrap();
        let newer_minor = format!("{}.{}.0", host.major, host.minor + 1);
        assert!(check_version(path, &newer_minor).is_ok());
        let oldest = format!("{}.0.0", host.major);
        assert_eq!(check_version(path, &oldest).unwrap().minor, 0, "older minor versions load");
        let other_major = format!("{}.0.0", host.major + 1);
        let e = check_version(path, &other_major).unwrap_err().to_string();
        assert!(e.contains(&format!("built against plugin-api {other_major}")), "{e}");
        assert!(e.contains(&format!("uses plugin-api {ABI_VERSION}")), "{e}");
        assert!(e.contains(&format!("needs a buktor-middleware built with plugin-api {}.x", host.major + 1)), "{e}");
        assert!(check_version(path, "banana").is_err());
    }

    #[test]
    fn layout_reports_shrink_to_one_line() {
        let mismatch = "Compared <this>:\n    --- Type Layout ---\n    type:PluginModule\n\n\
                        Error:mismatched package\nExpected:\n    his-plugin-api\nFound:\n    fixture\n\n";
        assert_eq!(
            summarize_layout_report(mismatch),
            "abi_stable: mismatched package (expected his-plugin-api, found fixture)"
        );
        assert_eq!(
            summarize_layout_report(&mismatch.repeat(300)),
            "abi_stable found 300 mismatches, first: mismatched package (expected his-plugin-api, found fixture)"
        );
        assert_eq!(summarize_layout_report("no errors listed"), "abi_stable: the root module's layout differs");
        // The report of a plugin whose `Value` gained a field, in brief.
        let grown = "Layout of expected type:\n    --- Type Layout ---\n    type:PluginModule\n    line:26 mod:his_plugin_api::module\n\
                     Layout of expected type:\n    --- Type Layout ---\n    type:Value\n    size:48 align:8\n    \
                     line:81 mod:his_plugin_api::value\nLayout of found type:\n    type:Value\n\n\
                     Error:incompatible type size\nExpected:\n    48\nFound:\n    56\n\n\
                     Error:too many fields\nExpected:\n    3\nFound:\n    4\n";
        assert_eq!(
            summarize_layout_report(grown),
            "abi_stable found 2 mismatches, first: type Value (his_plugin_api::value): incompatible type size \
             (expected 48, found 56)"
        );
    }
}
