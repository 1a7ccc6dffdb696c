//! The subcommands, one file each; the top layer, in the binary: they
//! use the library's layers and nothing imports them. Errors here are
//! `anyhow` (they are only printed, as one line, by `main`).

pub mod check;
pub mod describe;
pub mod events;
pub mod map;
pub mod plugin_test;
pub mod run;
pub mod schema;
pub mod service;
pub mod status;

use std::path::Path;

use buktor_middleware::{config, text::escape_controls};

/// A command's final error as one line: a serde or database message may
/// quote a value, never a secret; and nothing from a file or a sender
/// reaches the terminal (or a log file) as a control sequence.
pub fn printable_error(config_path: Option<&Path>, error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    let text = match config::locate(config_path) {
        Ok(file) => config::Secrets::of_file(&file).redact(&text),
        Err(_) => text,
    };
    escape_controls(&text)
}
