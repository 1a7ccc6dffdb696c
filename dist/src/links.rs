//! `cargo xtask links`: every relative link in the repository's Markdown
//! resolves.
//!
//! The documentation is split over several files (README.md, the
//! operator's manual in dist/, ARCHITECTURE.md, the plugin guide, …) that
//! point into each other, often at a section (`file.md#heading`). A
//! renamed heading or a moved file breaks such a link silently: nothing
//! else reads them. This task reads every tracked `*.md` file with a
//! CommonMark parser (so links in code blocks and inline code are not
//! links, as on GitHub) and checks that each relative link names a tracked
//! file or folder, and that an `#anchor` into a Markdown file matches one
//! of its headings as GitHub turns them into ids. Links with a scheme
//! (`https:`, `mailto:`, …) are not fetched: there is no network here.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    path::{Component, Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};
use pulldown_cmark::{Event, LinkType, Options, Parser, Tag, TagEnd};

/// Checks every tracked Markdown file under `root`; prints one line per
/// broken link and fails with their count.
pub fn check(root: &Path) -> anyhow::Result<()> {
    let output = Command::new("git").current_dir(root).args(["ls-files", "-z"]).output().context("run git ls-files")?;
    if !output.status.success() {
        bail!("git ls-files failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let tracked: BTreeSet<String> =
        String::from_utf8(output.stdout)?.split('\0').filter(|f| !f.is_empty()).map(str::to_string).collect();
    let markdown = tracked.iter().filter(|f| f.ends_with(".md")).count();
    let broken = broken_links(&tracked, |file| std::fs::read_to_string(root.join(file)).ok());
    for line in &broken {
        eprintln!("{line}");
    }
    match broken.len() {
        0 => {
            println!("links: every relative link in the {markdown} tracked Markdown files resolves");
            Ok(())
        }
        1 => bail!("1 broken link"),
        n => bail!("{n} broken links"),
    }
}

/// `file:line: broken link "target": reason` for each broken link in the
/// Markdown files among `tracked` (paths relative to the repository, with
/// `/`), whose text `read` gives.
fn broken_links(tracked: &BTreeSet<String>, read: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut anchors: HashMap<String, Option<HashSet<String>>> = HashMap::new();
    let mut broken = Vec::new();
    for file in tracked.iter().filter(|f| f.ends_with(".md")) {
        let Some(text) = read(file) else {
            broken.push(format!("{file}: cannot be read"));
            continue;
        };
        for (line, target) in links(&text) {
            let problem = match target.split_once('#') {
                _ if target.is_empty() => Some("empty target".to_string()),
                _ if has_scheme(&target) => None,
                Some(("", anchor)) => missing_anchor(file, anchor, &mut anchors, &read),
                Some((path, anchor)) => match resolve(file, path, tracked) {
                    Err(reason) => Some(reason),
                    Ok(path) if path.ends_with(".md") => missing_anchor(&path, anchor, &mut anchors, &read),
                    // An anchor into another kind of file (`#L10`) is GitHub's business.
                    Ok(_) => None,
                },
                None => resolve(file, &target, tracked).err(),
            };
            if let Some(reason) = problem {
                broken.push(format!("{file}:{line}: broken link \"{target}\": {reason}"));
            }
        }
    }
    broken
}

/// `(line, target)` of each link and image in `text`. Code blocks and
/// inline code hold no links; reference links come with their target.
fn links(text: &str) -> Vec<(usize, String)> {
    Parser::new_ext(text, Options::ENABLE_TABLES)
        .into_offset_iter()
        .filter_map(|(event, range)| match event {
            Event::Start(Tag::Link { link_type, dest_url, .. } | Tag::Image { link_type, dest_url, .. }) => {
                let line = text[..range.start].matches('\n').count() + 1;
                // An autolink `<someone@example.org>` comes without its `mailto:`.
                let mailto = if link_type == LinkType::Email { "mailto:" } else { "" };
                Some((line, format!("{mailto}{dest_url}")))
            }
            _ => None,
        })
        .collect()
}

/// `mailto:`, `https:` and any other scheme: not a path in the repository.
fn has_scheme(target: &str) -> bool {
    target.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// The tracked file or folder that `path`, linked from `from`, names
/// (relative to the repository), or why there is none.
fn resolve(from: &str, path: &str, tracked: &BTreeSet<String>) -> Result<String, String> {
    // GitHub takes a leading `/` as the repository's root.
    let joined = match path.strip_prefix('/') {
        Some(path) => PathBuf::from(path),
        None => Path::new(from).parent().unwrap_or(Path::new("")).join(path),
    };
    let mut parts: Vec<&str> = Vec::new();
    for component in joined.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().expect("built from UTF-8")),
            Component::ParentDir if parts.pop().is_none() => return Err("outside the repository".into()),
            _ => {}
        }
    }
    let target = parts.join("/");
    let folder = format!("{target}/");
    if tracked.contains(&target) || tracked.range(folder.clone()..).next().is_some_and(|f| f.starts_with(&folder)) {
        Ok(target)
    } else {
        Err(format!("no tracked file or folder {target}"))
    }
}

/// Why `#anchor` names no heading of the Markdown file `file`, if it does
/// not. `anchors` keeps each file's heading ids once read.
fn missing_anchor(
    file: &str,
    anchor: &str,
    anchors: &mut HashMap<String, Option<HashSet<String>>>,
    read: &impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let ids = anchors.entry(file.to_string()).or_insert_with(|| read(file).map(|text| heading_ids(&text)));
    match ids {
        None => Some(format!("{file} cannot be read")),
        Some(ids) if ids.contains(anchor) => None,
        Some(_) => Some(format!("no heading in {file} has the id \"{anchor}\"")),
    }
}

/// The ids GitHub gives the headings of `text`: each heading's slug, and
/// `slug-1`, `slug-2`, … for repeats (as github-slugger does).
fn heading_ids(text: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut repeats: HashMap<String, usize> = HashMap::new();
    let mut heading: Option<String> = None;
    for event in Parser::new_ext(text, Options::ENABLE_TABLES) {
        match (event, heading.as_mut()) {
            (Event::Start(Tag::Heading { .. }), _) => heading = Some(String::new()),
            (Event::Text(part) | Event::Code(part), Some(heading)) => heading.push_str(&part),
            (Event::End(TagEnd::Heading(_)), Some(_)) => {
                let base = slug(&heading.take().expect("in a heading"));
                let mut id = base.clone();
                while ids.contains(&id) {
                    let count = repeats.entry(base.clone()).or_default();
                    *count += 1;
                    id = format!("{base}-{count}");
                }
                ids.insert(id);
            }
            _ => {}
        }
    }
    ids
}

/// GitHub's id for a heading whose text is `heading`: lower case, spaces
/// to `-`, and every other character but letters, digits, `-` and `_`
/// dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_githubs() {
        assert_eq!(slug("What is verified, and where"), "what-is-verified-and-where");
        assert_eq!(slug("Configuration: his-config.json"), "configuration-his-configjson");
        assert_eq!(slug("The journal at a glance: `status`"), "the-journal-at-a-glance-status");
        assert_eq!(slug("`host/` — the binary"), "host--the-binary");
        assert_eq!(slug("snake_case and Ünïcode 2"), "snake_case-and-ünïcode-2");
    }

    #[test]
    fn repeated_headings_get_numbered_ids() {
        let ids = heading_ids("# Errors\n\n## Errors\n\ntext\n\n### Errors\n\n## Errors-1\n");
        let expected = ["errors", "errors-1", "errors-2", "errors-1-1"];
        assert_eq!(ids, expected.into_iter().map(str::to_string).collect());
    }

    /// `broken_links` over an in-memory repository of `files`.
    fn check(files: &[(&str, &str)]) -> Vec<String> {
        let tracked = files.iter().map(|(name, _)| name.to_string()).collect();
        broken_links(&tracked, |name| files.iter().find(|(f, _)| *f == name).map(|(_, text)| text.to_string()))
    }

    #[test]
    fn a_good_link_passes_and_a_broken_one_is_reported_with_its_line() {
        let files = [
            ("README.md", "# Try it\n\nSee [the manual](dist/manual.md#run-as-a-service).\n"),
            ("dist/manual.md", "# Manual\n\n## Run as a service\n\nBack to [the top](../README.md#try-it).\n"),
        ];
        assert_eq!(check(&files), Vec::<String>::new());

        let files = [("README.md", "# Try it\n\n```sh\n[not](a-link.md)\n```\n\nSee [the guide](docs/guide.md).\n")];
        assert_eq!(
            check(&files),
            [r#"README.md:7: broken link "docs/guide.md": no tracked file or folder docs/guide.md"#]
        );
    }

    #[test]
    fn anchors_folders_and_schemes() {
        let files = [
            (
                "README.md",
                "# Top\n\n[a](#top) [b](#nowhere) [c](plugins/) [d](https://example.com/x.md) [e](../up.md) [f](mailto:a@b.example) <a@b.example>\n",
            ),
            ("plugins/lib.rs", ""),
        ];
        assert_eq!(
            check(&files),
            [
                r##"README.md:3: broken link "#nowhere": no heading in README.md has the id "nowhere""##,
                r#"README.md:3: broken link "../up.md": outside the repository"#,
            ]
        );
    }
}
