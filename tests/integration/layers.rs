//! The house's shape, checked on the source tree: layers point one way, and the read model's details
//! stay in its connector.
//!
//! - Outside `src/source/elasticsearch/`, no product code names Elasticsearch's versions, scrolling or
//!   aliases (`seq_no`, `primary_term`, `search_after`, `_pit`, `_aliases`) or uses the `elasticsearch`
//!   crate: the engine, check, repair and undo see traits with opaque versions.
//! - No module of the product, nor of the emulator, imports a module that imports it back (through any
//!   chain). A module using its own ancestors (`super::Thing` declared by the parent) is how Rust
//!   modules nest, not a loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's code without its unit tests (a test may name what it looks for) and without comments.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    code.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn elasticsearch_details_stay_in_the_elasticsearch_connector() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let connector = root.join("src/source/elasticsearch");
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let words = ["seq_no", "primary_term", "search_after", "_pit", "_aliases"];
    let mut found = Vec::new();
    for path in files.iter().filter(|p| !p.starts_with(&connector)) {
        for (n, line) in code_of(path).lines().enumerate() {
            // The crate, not this crate's `source::elasticsearch` module.
            let uses_crate = line
                .match_indices("elasticsearch::")
                .any(|(at, _)| !line[..at].ends_with("::"));
            if uses_crate || words.iter().any(|w| line.contains(w)) {
                found.push(format!(
                    "{}:{}: {}",
                    path.strip_prefix(root).unwrap().display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert_eq!(found, Vec::<String>::new());
}

/// The module a file declares, as its path below `src`: `engine/scan.rs` is `engine::scan`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let mut parts: Vec<String> = file
        .strip_prefix(src)
        .unwrap()
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// Edges from each module to the modules its `crate::`, `super::` and `self::` paths name (the longest
/// known module prefix of each path), leaving out edges to its own ancestors.
fn imports(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.retain(|f| !f.starts_with(src.join("bin")));
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        let code = code_of(file);
        let bytes = code.as_bytes();
        for start in ["crate::", "super::", "self::"] {
            for (at, _) in code.match_indices(start) {
                if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b':') {
                    continue;
                }
                let path: String = code[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
                let mut base: Vec<String> = match segments.first() {
                    Some(&"crate") => Vec::new(),
                    Some(&"self") => module.clone(),
                    _ => module.clone(),
                };
                segments.remove(0);
                if path.starts_with("super::") {
                    base.pop();
                }
                while segments.first() == Some(&"super") {
                    base.pop();
                    segments.remove(0);
                }
                let target = (0..=segments.len()).rev().find_map(|n| {
                    let mut candidate = base.clone();
                    candidate.extend(segments[..n].iter().map(|s| s.to_string()));
                    modules.contains(&candidate).then_some(candidate)
                });
                if let Some(target) = target {
                    let ancestor = target.len() <= module.len() && module[..target.len()] == target[..];
                    if !ancestor {
                        edges.entry(module.clone()).or_default().insert(target);
                    }
                }
            }
        }
    }
    edges
}

/// Every module from which `from` is reachable again.
fn cycles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<String> {
    let mut found = BTreeSet::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&Vec<String>> = edges[start].iter().collect();
        while let Some(next) = stack.pop() {
            if next == start {
                found.insert(start.join("::"));
                break;
            }
            if seen.insert(next) {
                stack.extend(edges.get(next).into_iter().flatten());
            }
        }
    }
    found.into_iter().collect()
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for src in [root.join("src"), root.join("crates/recon-es-emulator/src")] {
        let edges = imports(&src);
        assert!(
            !edges.is_empty(),
            "{}: no imports found: the scan is broken",
            src.display()
        );
        assert_eq!(
            cycles(&edges),
            Vec::<String>::new(),
            "modules in an import loop under {}",
            src.display()
        );
    }
}

/// The loop finder finds a loop: two modules naming each other.
#[test]
fn the_loop_finder_finds_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(src.join("b.rs"), "use super::a::A;\npub struct B;\n").unwrap();
    assert_eq!(cycles(&imports(src)), ["a", "b"]);
    std::fs::write(src.join("b.rs"), "pub struct B;\n").unwrap();
    assert_eq!(cycles(&imports(src)), Vec::<String>::new());
}
