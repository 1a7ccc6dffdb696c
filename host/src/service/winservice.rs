//! `buktor-middleware service install|uninstall|start|stop`: the host as
//! a Windows service, through the windows-service crate.
//!
//! `install` registers this executable to start at boot as
//! `buktor-middleware.exe --config <his-config.json> --log-dir <folder>
//! service run --name <name>`, restarted by the service manager when it
//! fails; `service run` is what the service manager starts, never a person.
//! Its Stop (and the machine's shutdown) is the same graceful shutdown as
//! Ctrl-C. A service has no console: logs go to daily files in the log
//! folder.
//!
//! Everything but the launch line is Windows-only; elsewhere each action
//! is [`ServiceError::NotWindows`], which points at the systemd unit.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

/// The service's name when `--name` is not given.
pub const DEFAULT_NAME: &str = "BuktorMiddleware";

/// What the service manager is told to run, and as what.
#[derive(Debug, Clone)]
pub struct Install {
    /// The service's name (`sc query <name>`).
    pub name: String,
    /// This executable, absolute.
    pub exe: PathBuf,
    /// The config, absolute: a service starts in C:\Windows\System32.
    pub config: PathBuf,
    /// Where the service's daily log files go, absolute.
    pub log_dir: PathBuf,
    /// `--log-format` for the service's files (`text` or `json`).
    pub log_format: String,
}

impl Install {
    /// The arguments the service manager starts the executable with.
    pub fn launch_arguments(&self) -> Vec<OsString> {
        vec![
            "--config".into(),
            self.config.clone().into_os_string(),
            "--log-dir".into(),
            self.log_dir.clone().into_os_string(),
            "--log-format".into(),
            self.log_format.clone().into(),
            "service".into(),
            "run".into(),
            "--name".into(),
            self.name.clone().into(),
        ]
    }
}

/// The log folder when `--log-dir` is not given: `logs` beside the config.
pub fn default_log_dir(config: &Path) -> PathBuf {
    config.parent().unwrap_or(Path::new(".")).join("logs")
}

/// Why a service action failed, in terms of what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The service commands exist only on Windows.
    #[error(
        "`service` installs a Windows service; on Linux, install service/buktor-middleware.service \
         (systemd) as the README says"
    )]
    NotWindows,
    /// Installing, starting or stopping a service takes an administrator.
    #[error("cannot {action}: access denied. Run it in an elevated prompt (Run as administrator)")]
    AccessDenied {
        /// What was being done.
        action: String,
    },
    /// `install` found the name taken.
    #[error(
        "a service named {name} is already installed: `buktor-middleware service uninstall --name {name}` first, \
         or pass another --name"
    )]
    Exists {
        /// The service name.
        name: String,
    },
    /// No service has that name.
    #[error("no service named {name} is installed (`buktor-middleware service install` installs it)")]
    Missing {
        /// The service name.
        name: String,
    },
    /// `service run` was started by a person, not the service manager.
    #[error(
        "`service run` is what the Windows service manager starts; to run in this window, run \
         `buktor-middleware` without `service run`, or start the service with `buktor-middleware service start`"
    )]
    NotUnderServiceManager,
    /// The service did not reach the state asked for.
    #[error("{what}; see its log files in {log_dir}")]
    NotReached {
        /// What happened instead.
        what: String,
        /// Where its logs are.
        log_dir: String,
    },
    /// Any other answer from Windows.
    #[error("cannot {action}: {source}")]
    Windows {
        /// What was being done.
        action: String,
        /// What Windows said.
        source: std::io::Error,
    },
}

#[cfg(not(windows))]
mod platform {
    use super::{Install, ServiceError};

    pub fn install(_: &Install) -> Result<(), ServiceError> {
        Err(ServiceError::NotWindows)
    }
    pub fn uninstall(_: &str) -> Result<(), ServiceError> {
        Err(ServiceError::NotWindows)
    }
    pub fn start(_: &str) -> Result<(), ServiceError> {
        Err(ServiceError::NotWindows)
    }
    pub fn stop(_: &str) -> Result<(), ServiceError> {
        Err(ServiceError::NotWindows)
    }
    pub fn run_as_service(_: &str, _: super::RunFn) -> Result<(), ServiceError> {
        Err(ServiceError::NotWindows)
    }
}

/// What `service run` runs: the middleware, under the given control; an
/// error is the process's failure, as text.
pub type RunFn = Box<dyn FnOnce(crate::service::lifecycle::Control) -> Result<(), String> + Send>;

pub use platform::{install, run_as_service, start, stop, uninstall};

#[cfg(windows)]
// The service manager calls the entry point that define_windows_service!
// generates through FFI; the macro's expansion uses unsafe code.
#[allow(unsafe_code)]
mod platform {
    use std::{
        ffi::{OsStr, OsString},
        sync::{Arc, Mutex, OnceLock},
        time::{Duration, Instant},
    };

    use windows_service::{
        define_windows_service,
        service::{
            ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept, ServiceErrorControl,
            ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo, ServiceStartType,
            ServiceState, ServiceStatus, ServiceType,
        },
        service_control_handler::{self, ServiceControlHandlerResult, ServiceStatusHandle},
        service_dispatcher,
        service_manager::{ServiceManager, ServiceManagerAccess},
    };

    use super::{Install, RunFn, ServiceError};
    use crate::{service::lifecycle::Control, sync::lock};

    /// Windows error codes that have an answer of their own.
    const ERROR_ACCESS_DENIED: i32 = 5;
    const ERROR_SERVICE_CANNOT_ACCEPT_CTRL: i32 = 1061;
    const ERROR_SERVICE_ALREADY_RUNNING: i32 = 1056;
    const ERROR_SERVICE_DOES_NOT_EXIST: i32 = 1060;
    const ERROR_SERVICE_NOT_ACTIVE: i32 = 1062;
    const ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: i32 = 1063;
    const ERROR_SERVICE_EXISTS: i32 = 1073;

    /// How long the service manager waits for a start, and the longest a
    /// graceful stop takes (the worker's and the committer's grace), with
    /// room to spare: also how long `start` and `stop` wait.
    const WAIT_HINT: Duration = Duration::from_secs(60);

    /// What Windows said, without the crate's "IO error in winapi call".
    fn describe(e: windows_service::Error) -> String {
        io_error(e).to_string()
    }

    /// The Windows error inside `e` (its code and message).
    fn io_error(e: windows_service::Error) -> std::io::Error {
        match e {
            windows_service::Error::Winapi(source) => source,
            other => std::io::Error::other(other.to_string()),
        }
    }

    fn error(action: &str, name: &str, e: windows_service::Error) -> ServiceError {
        let source = io_error(e);
        match source.raw_os_error() {
            Some(ERROR_ACCESS_DENIED) => ServiceError::AccessDenied { action: action.to_string() },
            Some(ERROR_SERVICE_EXISTS) => ServiceError::Exists { name: name.to_string() },
            Some(ERROR_SERVICE_DOES_NOT_EXIST) => ServiceError::Missing { name: name.to_string() },
            Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) => ServiceError::NotUnderServiceManager,
            _ => ServiceError::Windows { action: action.to_string(), source },
        }
    }

    fn manager(access: ServiceManagerAccess) -> Result<ServiceManager, ServiceError> {
        ServiceManager::local_computer(None::<&str>, access).map_err(|e| error("open the service manager", "", e))
    }

    pub fn install(install: &Install) -> Result<(), ServiceError> {
        let name = &install.name;
        let manager = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?;
        let info = ServiceInfo {
            name: name.into(),
            display_name: format!("Buktor middleware ({name})").into(),
            service_type: ServiceType::OWN_PROCESS,
            start_type: ServiceStartType::AutoStart,
            error_control: ServiceErrorControl::Normal,
            executable_path: install.exe.clone(),
            launch_arguments: install.launch_arguments(),
            dependencies: vec![],
            // LocalSystem, as sc.exe and the Task Scheduler line do.
            account_name: None,
            account_password: None,
        };
        let service = manager
            // START too: Windows requires it to set a Restart recovery action.
            .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START | ServiceAccess::QUERY_STATUS)
            .map_err(|e| error(&format!("install the service {name}"), name, e))?;
        let _ = service
            .set_description("Receives Buktor webhook events, journals them, and writes them into the HIS database.");
        // Restarted after 10 s, then every minute, also after an error exit.
        let restart =
            |secs| ServiceAction { action_type: ServiceActionType::Restart, delay: Duration::from_secs(secs) };
        let recovery = service.update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(10), restart(60), restart(60)]),
        });
        // Time at shutdown for the graceful stop, instead of a few seconds.
        if let Err(e) = service.set_preshutdown_timeout(WAIT_HINT) {
            tracing::warn!(
                "installed {name}, but could not ask for {}s at system shutdown: {}",
                WAIT_HINT.as_secs(),
                describe(e)
            );
        }
        if let Err(e) = recovery {
            tracing::warn!(
                "installed {name}, but could not set its recovery (restart on failure): {}. Set it with \
                 `sc.exe failure {name} reset= 86400 actions= restart/10000/restart/60000/restart/60000`",
                describe(e)
            );
        } else if let Err(e) = service.set_failure_actions_on_non_crash_failures(true) {
            tracing::warn!(
                "installed {name}; it restarts after a crash, but could not be set to restart after an error \
                 exit too: {}. Set it with `sc.exe failureflag {name} 1`",
                describe(e)
            );
        }
        Ok(())
    }

    pub fn uninstall(name: &str) -> Result<(), ServiceError> {
        let manager = manager(ServiceManagerAccess::CONNECT)?;
        let access =
            ServiceAccess::STOP | ServiceAccess::DELETE | ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG;
        let service = manager.open_service(name, access).map_err(|e| error("open the service", name, e))?;
        stop_and_wait(&service, name)?;
        service.delete().map_err(|e| error(&format!("remove the service {name}"), name, e))
    }

    pub fn start(name: &str) -> Result<(), ServiceError> {
        let manager = manager(ServiceManagerAccess::CONNECT)?;
        let access = ServiceAccess::START | ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG;
        let service = manager.open_service(name, access).map_err(|e| error("open the service", name, e))?;
        match service.start::<&OsStr>(&[]) {
            Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(ERROR_SERVICE_ALREADY_RUNNING) => {
                return Ok(());
            }
            other => other.map_err(|e| error(&format!("start the service {name}"), name, e))?,
        }
        wait_for(&service, name, ServiceState::Running, &installed_log_dir(&service))
    }

    pub fn stop(name: &str) -> Result<(), ServiceError> {
        let manager = manager(ServiceManagerAccess::CONNECT)?;
        let access = ServiceAccess::STOP | ServiceAccess::QUERY_STATUS | ServiceAccess::QUERY_CONFIG;
        let service = manager.open_service(name, access).map_err(|e| error("open the service", name, e))?;
        stop_and_wait(&service, name)
    }

    fn stop_and_wait(service: &windows_service::service::Service, name: &str) -> Result<(), ServiceError> {
        match service.stop() {
            Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(ERROR_SERVICE_NOT_ACTIVE) => Ok(()),
            // Starting or already stopping: wait for it to be stopped.
            Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(ERROR_SERVICE_CANNOT_ACCEPT_CTRL) => {
                wait_for(service, name, ServiceState::Stopped, &installed_log_dir(service))
            }
            Err(e) => Err(error(&format!("stop the service {name}"), name, e)),
            Ok(_) => wait_for(service, name, ServiceState::Stopped, &installed_log_dir(service)),
        }
    }

    /// The log folder the service was installed with, for messages.
    fn installed_log_dir(service: &windows_service::service::Service) -> String {
        service
            .query_config()
            .ok()
            .and_then(|config| log_dir_of(&config.executable_path.to_string_lossy()))
            .unwrap_or_else(|| "the folder given by --log-dir at install".into())
    }

    /// Polls until the service is in `state`, or has clearly failed to get there.
    fn wait_for(
        service: &windows_service::service::Service,
        name: &str,
        state: ServiceState,
        log_dir: &str,
    ) -> Result<(), ServiceError> {
        let deadline = Instant::now() + WAIT_HINT + Duration::from_secs(10);
        loop {
            let status = service.query_status().map_err(|e| error("ask the service's state", name, e))?;
            if status.current_state == state {
                return Ok(());
            }
            if state == ServiceState::Running && status.current_state == ServiceState::Stopped {
                return Err(ServiceError::NotReached {
                    what: format!("the service {name} stopped as it started: its last log line says why"),
                    log_dir: log_dir.to_string(),
                });
            }
            if Instant::now() > deadline {
                return Err(ServiceError::NotReached {
                    what: format!(
                        "the service {name} is still {:?} after {}s",
                        status.current_state,
                        WAIT_HINT.as_secs()
                    ),
                    log_dir: log_dir.to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The `--log-dir` value in a service's command line, as installed.
    fn log_dir_of(command_line: &str) -> Option<String> {
        let rest = command_line.split("--log-dir").nth(1)?.trim_start();
        let value = match rest.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next()?,
            None => rest.split(' ').next()?,
        };
        Some(value.to_string())
    }

    /// The service's name and the middleware to run, handed from
    /// `run_as_service` to the entry point the service manager calls.
    static SERVICE: Mutex<Option<(String, RunFn)>> = Mutex::new(None);

    define_windows_service!(ffi_service_main, service_main);

    pub fn run_as_service(name: &str, run: RunFn) -> Result<(), ServiceError> {
        *lock(&SERVICE) = Some((name.to_string(), run));
        // Blocks until the service has stopped.
        service_dispatcher::start(name, ffi_service_main).map_err(|e| error("run as a service", name, e))
    }

    /// Called by the service manager, on a thread of its own.
    fn service_main(_arguments: Vec<OsString>) {
        let Some((name, run)) = lock(&SERVICE).take() else {
            return;
        };
        if let Err(e) = serve(&name, run) {
            tracing::error!("the service {name} failed: {e}");
        }
    }

    fn serve(name: &str, run: RunFn) -> Result<(), ServiceError> {
        // The handler runs on the dispatcher's thread. It needs the
        // reporter (known once registered) and the stopper (known once the
        // control exists).
        let shared: Arc<OnceLock<(Arc<Reporter>, crate::service::lifecycle::Stopper)>> = Arc::default();
        let handler_shared = shared.clone();
        let handler = move |event| match event {
            ServiceControl::Stop | ServiceControl::Preshutdown | ServiceControl::Shutdown => {
                if let Some((reporter, stopper)) = handler_shared.get()
                    && reporter.begin_stop()
                {
                    tracing::info!("the service manager asked to stop");
                    stopper.request_stop();
                }
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        };
        let handle = service_control_handler::register(name, handler)
            .map_err(|e| error("register with the service manager", name, e))?;
        let reporter = Arc::new(Reporter { handle, progress: Mutex::new(Progress::default()) });
        reporter.report(ServiceState::StartPending, 1, ServiceExitCode::Win32(0));
        let running = reporter.clone();
        let control = Control::supervised(Box::new(move || running.running()), Box::new(|| {}));
        let _ = shared.set((reporter.clone(), control.stopper()));
        let result = run(control);
        let exit_code = match &result {
            Ok(()) => ServiceExitCode::Win32(0),
            Err(e) => {
                tracing::error!("{e}");
                ServiceExitCode::ServiceSpecific(1)
            }
        };
        reporter.stopped(exit_code);
        Ok(())
    }

    /// Tells the service manager the service's state. While it stops, a
    /// thread moves the checkpoint on every few seconds, so that services.msc
    /// and `sc` see progress through the graceful shutdown (up to ~50 s).
    struct Reporter {
        handle: ServiceStatusHandle,
        progress: Mutex<Progress>,
    }

    #[derive(Default)]
    struct Progress {
        stopping: bool,
        stopped: bool,
        checkpoint: u32,
    }

    /// How often the checkpoint moves while stopping, and the hint given.
    const STOP_TICK: Duration = Duration::from_secs(3);
    const STOP_HINT: Duration = Duration::from_secs(10);

    impl Reporter {
        fn running(&self) {
            let progress = lock(&self.progress);
            if !progress.stopping && !progress.stopped {
                self.report(ServiceState::Running, 0, ServiceExitCode::Win32(0));
            }
        }

        /// Reports StopPending at once (no more controls accepted) and
        /// starts the ticker. False if a stop had begun already.
        fn begin_stop(self: &Arc<Self>) -> bool {
            {
                let mut progress = lock(&self.progress);
                if progress.stopping || progress.stopped {
                    return false;
                }
                progress.stopping = true;
                progress.checkpoint = 1;
                self.report(ServiceState::StopPending, 1, ServiceExitCode::Win32(0));
            }
            let reporter = self.clone();
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(STOP_TICK);
                    let mut progress = lock(&reporter.progress);
                    if progress.stopped {
                        return;
                    }
                    progress.checkpoint += 1;
                    reporter.report(ServiceState::StopPending, progress.checkpoint, ServiceExitCode::Win32(0));
                }
            });
            true
        }

        fn stopped(&self, exit: ServiceExitCode) {
            let mut progress = lock(&self.progress);
            progress.stopped = true;
            self.report(ServiceState::Stopped, 0, exit);
        }

        fn report(&self, state: ServiceState, checkpoint: u32, exit: ServiceExitCode) {
            let (accepts, wait_hint) = match state {
                // Preshutdown, not Shutdown: Windows gives a Shutdown only
                // seconds, too few for a write to the HIS in progress.
                ServiceState::Running => {
                    (ServiceControlAccept::STOP | ServiceControlAccept::PRESHUTDOWN, Duration::ZERO)
                }
                ServiceState::StartPending => (ServiceControlAccept::empty(), WAIT_HINT),
                ServiceState::StopPending => (ServiceControlAccept::empty(), STOP_HINT),
                _ => (ServiceControlAccept::empty(), Duration::ZERO),
            };
            let status = ServiceStatus {
                service_type: ServiceType::OWN_PROCESS,
                current_state: state,
                controls_accepted: accepts,
                exit_code: exit,
                checkpoint,
                wait_hint,
                process_id: None,
            };
            if let Err(e) = self.handle.set_service_status(status) {
                tracing::warn!("cannot tell the service manager the state {state:?}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_is_launched_with_absolute_config_and_log_folder_then_service_run() {
        let install = Install {
            name: "Buktor2".into(),
            exe: PathBuf::from("/opt/buktor/buktor-middleware"),
            config: PathBuf::from("/opt/buktor/his-config.json"),
            log_dir: default_log_dir(Path::new("/opt/buktor/his-config.json")),
            log_format: "json".into(),
        };
        let arguments: Vec<String> = install.launch_arguments().into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(
            arguments,
            [
                "--config",
                "/opt/buktor/his-config.json",
                "--log-dir",
                "/opt/buktor/logs",
                "--log-format",
                "json",
                "service",
                "run",
                "--name",
                "Buktor2"
            ]
        );
    }

    #[cfg(not(windows))]
    #[test]
    fn off_windows_every_action_points_at_systemd() {
        let error = start(DEFAULT_NAME).unwrap_err();
        assert!(matches!(error, ServiceError::NotWindows));
        assert!(error.to_string().contains("buktor-middleware.service"), "{error}");
    }
}
