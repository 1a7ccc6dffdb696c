//! `cargo xtask layers`: the host's modules import one way.
//!
//! Two rules, read from `host/src` with `syn` (the modules as the compiler
//! sees them, `#[cfg(test)]` code left out):
//! - **No loops.** No module imports another that imports it back, directly
//!   or through others. A module's own children do not count as its
//!   imports (a `mod.rs` declares and re-exports them; they take its types
//!   from above), every other path does: `use` trees and paths in code,
//!   through `crate::`, `super::`, `self::` or `buktor_middleware::`.
//! - **Layers.** Each top-level folder or file has a rank ([`LAYERS`]);
//!   a module imports only from its own folder or from lower ranks.
//!
//! Why not `cargo modules dependencies --acyclic`: it builds rust-analyzer
//! (hundreds of crates, minutes of CI on two cores) and checks loops only,
//! not which way the layers run. `syn` is already how Rust tools read Rust.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use syn::visit::Visit;

/// Top-level modules from the bottom up: a module may import from its own
/// entry and the entries before it. The binary's `main` and `commands`
/// sit on top; `clock`, `sync` and `text` are leaves.
pub const LAYERS: &[&[&str]] = &[
    &["clock", "sync", "text"],
    &["config"],
    &["plugins"],
    &["telemetry"],
    &["pipeline"],
    &["http"],
    &["service"],
    &["main", "commands"],
];

/// The library's crate name, as the binary's modules write it.
const LIBRARY: &str = "buktor_middleware";

/// Checks `host/src` below `root`; an error lists every breach.
pub fn check(root: &Path) -> anyhow::Result<()> {
    let modules = read_tree(&root.join("host/src"))?;
    let breaches = breaches(&modules);
    if breaches.is_empty() {
        println!("layers: {} modules, no import loops, every import runs down the layers", modules.len());
        return Ok(());
    }
    for breach in &breaches {
        eprintln!("{breach}");
    }
    bail!("{} breach(es) of the host's layering (see ARCHITECTURE.md, \"Layers\")", breaches.len())
}

/// A module (one file) and the modules it imports. Names are paths
/// from the crate root, `lib::…` or `bin::…` (the library's and the
/// binary's modules share `host/src`).
type Modules = BTreeMap<String, BTreeSet<String>>;

fn read_tree(src: &Path) -> anyhow::Result<Modules> {
    let mut files = Vec::new();
    collect_files(src, &mut files)?;
    let names: BTreeMap<PathBuf, String> = files.iter().map(|file| (file.clone(), module_name(src, file))).collect();
    let known: BTreeSet<String> = names.values().cloned().collect();
    let mut modules = Modules::new();
    for (file, name) in &names {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let syntax = syn::parse_file(&text).with_context(|| format!("parsing {}", file.display()))?;
        let mut paths = Paths::default();
        paths.visit_file(&syntax);
        let imports = paths.0.iter().filter_map(|path| resolve(name, path, &known)).collect();
        modules.insert(name.clone(), imports);
    }
    Ok(modules)
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// `pipeline/journal/mod.rs` → `lib::pipeline::journal`; `commands/run.rs`
/// → `bin::commands::run`; `main.rs` → `bin`.
fn module_name(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|last| last == "mod" || last == "lib" || last == "main") {
        parts.pop();
    }
    let binary = file.ends_with("main.rs") || parts.first().is_some_and(|first| first == "commands");
    let mut name = String::from(if binary { "bin" } else { "lib" });
    for part in parts {
        name.push_str("::");
        name.push_str(&part);
    }
    name
}

/// Every path a file writes outside `#[cfg(test)]` code, as segments.
#[derive(Default)]
struct Paths(Vec<Vec<String>>);

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if !is_test(&item.attrs) {
            use_paths(&item.tree, &mut Vec::new(), &mut self.0);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.0.push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("test")
            || (attr.path().is_ident("cfg")
                && attr.meta.require_list().is_ok_and(|list| list.tokens.to_string().contains("test")))
    })
}

/// Flattens a `use` tree into its paths (a group gives one per member).
fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            use_paths(&path.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(name) => out.push([prefix.as_slice(), &[name.ident.to_string()]].concat()),
        syn::UseTree::Rename(rename) => out.push([prefix.as_slice(), &[rename.ident.to_string()]].concat()),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(group) => group.items.iter().for_each(|item| use_paths(item, prefix, out)),
    }
}

/// The known module `path` names, seen from module `from`: the longest
/// known prefix. `None` for paths outside the host (std, other crates), or
/// into `from` itself or its own children.
fn resolve(from: &str, path: &[String], known: &BTreeSet<String>) -> Option<String> {
    let crate_root = from.split("::").next().unwrap_or("lib");
    let (mut base, rest): (Vec<String>, &[String]) = match path.first().map(String::as_str)? {
        "crate" => (vec![crate_root.to_string()], &path[1..]),
        LIBRARY => (vec!["lib".to_string()], &path[1..]),
        "self" => (from.split("::").map(str::to_string).collect(), &path[1..]),
        "super" => {
            let mut base: Vec<String> = from.split("::").map(str::to_string).collect();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        _ => return None,
    };
    let mut found = base.join("::");
    for segment in rest {
        base.push(segment.clone());
        let candidate = base.join("::");
        if !known.contains(&candidate) {
            break;
        }
        found = candidate;
    }
    let own = found == from || found.starts_with(&format!("{from}::"));
    (!own && known.contains(&found)).then_some(found)
}

/// The top-level entry of a module: `lib::pipeline::worker` → `pipeline`.
fn top(module: &str) -> &str {
    let mut parts = module.split("::");
    let root = parts.next().unwrap_or_default();
    parts.next().unwrap_or(if root == "bin" { "main" } else { "lib" })
}

fn rank(top: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&top))
}

/// Every breach, one line each.
fn breaches(modules: &Modules) -> Vec<String> {
    let mut found = Vec::new();
    for (module, imports) in modules {
        let from = top(module);
        if from == "lib" {
            // The library's root only declares its modules.
            continue;
        }
        let Some(from_rank) = rank(from) else {
            found.push(format!("{module}: top-level module {from:?} has no layer in dist/src/layers.rs"));
            continue;
        };
        for import in imports {
            let to = top(import);
            if to == "lib" || to == from {
                continue;
            }
            if rank(to).is_some_and(|to_rank| to_rank >= from_rank) {
                found.push(format!("{module} imports {import}: {from} may not import from {to}, a layer above it"));
            }
        }
    }
    for cycle in cycles(modules) {
        found.push(format!("import loop: {}", cycle.join(" → ")));
    }
    found
}

/// The import loops: each strongly connected group of two or more
/// modules, shown as one path around it.
fn cycles(modules: &Modules) -> Vec<Vec<String>> {
    let mut loops = Vec::new();
    let mut reported = BTreeSet::new();
    for start in modules.keys() {
        if reported.contains(start) {
            continue;
        }
        if let Some(path) = path_back(modules, start) {
            reported.extend(path.iter().cloned());
            loops.push(path);
        }
    }
    loops
}

/// A path from `start` through its imports back to `start`, if any
/// (breadth first: the shortest).
fn path_back(modules: &Modules, start: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(module) = queue.pop_front() {
        for next in modules.get(module).into_iter().flatten() {
            if next == start {
                let mut path = vec![start.to_string()];
                let mut at = module;
                while at != start {
                    path.insert(1, at.to_string());
                    at = came_from[at];
                }
                path.push(start.to_string());
                return Some(path);
            }
            if !came_from.contains_key(next.as_str()) {
                came_from.insert(next, module);
                queue.push_back(next);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Modules) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let file = dir.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        let modules = read_tree(dir.path()).unwrap();
        (dir, modules)
    }

    #[test]
    fn a_loop_between_siblings_is_found_and_a_parent_child_pair_is_not() {
        let (_dir, modules) = tree(&[
            ("lib.rs", "pub mod http; pub mod config;"),
            ("http/mod.rs", "pub mod intake; pub mod admin; pub use intake::Intake;"),
            ("http/intake.rs", "use crate::http::admin::routes; use super::Thing; pub struct Intake;"),
            ("http/admin.rs", "pub fn routes() { let _ = crate::http::intake::Intake; }"),
            ("config/mod.rs", "mod load; pub use load::load; pub struct Config;"),
            ("config/load.rs", "use super::Config; pub fn load() {}"),
        ]);
        assert_eq!(
            breaches(&modules),
            ["import loop: lib::http::admin → lib::http::intake → lib::http::admin"],
            "{modules:#?}"
        );
    }

    #[test]
    fn an_import_up_the_layers_is_found_also_through_the_library_name() {
        let (_dir, modules) = tree(&[
            ("lib.rs", "pub mod config; pub mod pipeline; pub mod http;"),
            ("config.rs", "fn f() { crate::pipeline::worker::start(); }"),
            ("pipeline/mod.rs", "pub mod worker;"),
            ("pipeline/worker.rs", "use crate::config::Config; pub fn start() {}"),
            ("http/mod.rs", "use crate::pipeline::worker;"),
            ("main.rs", "mod commands; use buktor_middleware::http;"),
            ("commands/mod.rs", "use buktor_middleware::pipeline::worker::start;"),
        ]);
        assert_eq!(
            breaches(&modules),
            [
                "lib::config imports lib::pipeline::worker: config may not import from pipeline, a layer above it",
                "import loop: lib::config → lib::pipeline::worker → lib::config",
            ]
        );
    }

    #[test]
    fn test_code_is_left_out() {
        let (_dir, modules) = tree(&[
            ("lib.rs", "pub mod config; pub mod pipeline;"),
            ("config.rs", "#[cfg(test)] mod tests { use crate::pipeline::Worker; }"),
            ("pipeline.rs", "use crate::config::Config;"),
        ]);
        assert_eq!(breaches(&modules), Vec::<String>::new());
    }
}
