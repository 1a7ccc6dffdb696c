//! The Windows release under Wine: the `.zip` that `cargo xtask dist
//! --target x86_64-pc-windows-gnu` made, unpacked into an empty folder,
//! and a fresh, headless Wine prefix to run it in.
//!
//! Needs the zip (`.ci/run` builds it), Debian's `wine64`, MinGW-w64 and
//! `unzip`. Without them a test prints why it is skipped; with `CI=true`
//! it fails instead.
//!
//! Test support only: the stand-in `bcryptprimitives.dll`
//! (`wine/bcryptprimitives.c`), which Wine 8.0 lacks and every Windows
//! 10/11 has, is built here and put beside the .exe; it is never in the
//! release.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::{repo_root, skipped};

/// Debian's 64-bit Wine loader.
const WINE: &str = "/usr/lib/wine/wine64";
/// Its server, to end everything a prefix ran.
const WINESERVER: &str = "/usr/lib/wine/wineserver";
/// The release's target.
pub const TARGET: &str = "x86_64-pc-windows-gnu";

/// An unpacked Windows release and the Wine prefix it runs in. Ending it
/// ends every process and service of the prefix.
pub struct Wine {
    /// Holds the prefix and the unpacked release.
    _dir: tempfile::TempDir,
    prefix: PathBuf,
    /// The release folder: `buktor-middleware.exe`, the plugin DLLs,
    /// his-config.json, examples/, service/.
    pub folder: PathBuf,
}

impl Wine {
    /// A fresh prefix and a freshly unpacked release, or `None` after
    /// printing why (never under CI=true: there it panics).
    pub fn new(test: &str) -> Option<Self> {
        let zip = match find_zip() {
            Ok(zip) => zip,
            Err(why) => return skip(test, &why),
        };
        for (tool, package) in [(WINE, "wine64"), ("/usr/bin/x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64")] {
            if !Path::new(tool).is_file() {
                return skip(test, &format!("{tool} is missing (apt-get install {package})"));
            }
        }
        if Command::new("unzip").arg("-v").output().is_err() {
            return skip(test, "unzip is missing (apt-get install unzip)");
        }
        let dir = tempfile::tempdir().expect("a temporary folder");
        let prefix = dir.path().join("prefix");
        let unpacked = dir.path().join("release");
        std::fs::create_dir(&unpacked).unwrap();
        let folder = crate::unpack_release(&zip, &unpacked);
        assert!(
            !folder.join("bcryptprimitives.dll").exists(),
            "the release must not carry the test's stand-in bcryptprimitives.dll"
        );
        let wine = Self { _dir: dir, prefix, folder };
        // A fresh prefix: wineboot sets it up in a session of its own,
        // which must end before the services in it behave (during it the
        // service database stays locked). Then one session for the whole
        // test: without it the session, and the service manager with it,
        // would end whenever no Wine process runs.
        let booted = wine.command_raw("wineboot").arg("--init").stdout(Stdio::null()).stderr(Stdio::null()).status();
        assert!(booted.is_ok_and(|s| s.success()), "wineboot --init failed");
        wine.wineserver("-w");
        wine.wineserver("-p");
        build_stand_in(&wine.folder);
        Some(wine)
    }

    /// `buktor-middleware.exe` of the release, run by Wine in the release
    /// folder.
    pub fn middleware(&self) -> Command {
        let mut command = self.command_raw(self.folder.join("buktor-middleware.exe").to_str().unwrap());
        command.current_dir(&self.folder);
        command
    }

    /// Runs `buktor-middleware.exe ARGS` to its end (a service action, say)
    /// and returns its exit status and its output.
    pub fn run(&self, args: &[&str]) -> (std::process::ExitStatus, String) {
        // Into a file, not a pipe: Wine's session processes (the service
        // manager it may start) inherit the pipe and would hold it open
        // after the .exe has ended.
        let file = tempfile::NamedTempFile::new().expect("a temporary file");
        let status = self
            .middleware()
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.reopen().unwrap())
            .stderr(file.reopen().unwrap())
            .status()
            .expect("run buktor-middleware.exe");
        (status, std::fs::read_to_string(file.path()).unwrap_or_default())
    }

    /// `path` as Windows inside the prefix sees it (`Z:\…`).
    pub fn windows_path(path: &Path) -> String {
        format!("Z:{}", path.display()).replace('/', "\\")
    }

    /// Runs `wineserver FLAG` for this prefix.
    fn wineserver(&self, flag: &str) {
        let status = Command::new(WINESERVER)
            .arg(flag)
            .env("WINEPREFIX", &self.prefix)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "{WINESERVER} {flag}");
    }

    fn command_raw(&self, program: &str) -> Command {
        let mut command = Command::new(WINE);
        command.arg(program).env("WINEPREFIX", &self.prefix).env("WINEDEBUG", "-all").env("WINEDLLOVERRIDES", "");
        command
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = Command::new(WINESERVER).arg("-k").env("WINEPREFIX", &self.prefix).stderr(Stdio::null()).status();
    }
}

fn skip(test: &str, why: &str) -> Option<Wine> {
    if crate::strict() {
        panic!("CI=true, and the Windows test cannot run: {why}");
    }
    skipped(test, why);
    None
}

/// The zip of `cargo xtask dist --target x86_64-pc-windows-gnu`.
fn find_zip() -> Result<PathBuf, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from);
    let name = format!("buktor-middleware-{}-{TARGET}.zip", env!("CARGO_PKG_VERSION"));
    let zip = target.join("dist").join(&name);
    if zip.is_file() {
        Ok(zip)
    } else {
        Err(format!(
            "no {} (build it with `cargo xtask dist --target {TARGET}`, about 10 minutes cold; .ci/run does)",
            zip.display()
        ))
    }
}

/// Builds the stand-in `bcryptprimitives.dll` into `folder`.
fn build_stand_in(folder: &Path) {
    let source = repo_root().join("tests/src/wine");
    let output = Command::new("x86_64-w64-mingw32-gcc")
        .args(["-shared", "-O2", "-o"])
        .arg(folder.join("bcryptprimitives.dll"))
        .arg(source.join("bcryptprimitives.c"))
        .arg(source.join("bcryptprimitives.def"))
        .arg("-lbcrypt")
        .output()
        .expect("run x86_64-w64-mingw32-gcc");
    assert!(output.status.success(), "building the stand-in DLL: {}", String::from_utf8_lossy(&output.stderr));
}
