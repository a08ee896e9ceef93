//! The server's folders are its layers, and imports point one way: a file
//! may use the layers below its own and the files of its own layer, and no
//! files import each other in a loop. Read from the `use`/path lines of
//! `src/`, so a change that breaks the rule fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules, lowest first; a module may import only modules of a
/// lower rank (and its own).
const RANKS: [(&str, u8); 14] = [
    ("domain", 0),
    ("metrics", 0),
    ("connections", 0),
    ("livekit", 1),
    ("store", 2),
    ("report", 3),
    ("live", 4),
    ("ingest", 5),
    ("outbound", 5),
    ("http", 6),
    ("config", 7),
    ("tasks", 7),
    ("endpoints_cli", 7),
    ("lib", 8),
];

fn rank(module: &str) -> u8 {
    RANKS
        .iter()
        .find(|(name, _)| *name == module)
        .unwrap_or_else(|| panic!("src/{module}: give the new layer a rank in tests/layers.rs"))
        .1
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every source file as its module path (`store/cycles.rs` → `store::cycles`).
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            if path.is_dir() {
                walk(&path, &format!("{prefix}{name}::"), out);
            } else if path.extension().is_some_and(|e| e == "rs") && name != "main" {
                let module = match name.as_str() {
                    "mod" => prefix.trim_end_matches("::").to_string(),
                    _ => format!("{prefix}{name}"),
                };
                out.insert(module, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&src(), "", &mut out);
    out
}

/// The file a path such as `crate::store::cycles::Thing` lands in: the
/// longest prefix that is a module.
fn resolve(path: &[&str], modules: &BTreeMap<String, PathBuf>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains_key(candidate))
}

/// The modules `module` names with `crate::…` or `super::…`, outside tests.
fn imports(module: &str, text: &str, modules: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let is_mod_rs = modules[module].ends_with("mod.rs");
    let parent: Vec<&str> = {
        let mut parts: Vec<&str> = module.split("::").collect();
        if !is_mod_rs {
            parts.pop();
        }
        parts
    };
    let mut found = BTreeSet::new();
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let tail = &code[start..];
        let end = tail
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        let segments: Vec<&str> = tail[..end].split("::").filter(|s| !s.is_empty()).collect();
        let absolute: Vec<&str> = match segments.first() {
            Some(&"crate") => segments[1..].to_vec(),
            Some(&"super") => parent
                .iter()
                .copied()
                .chain(segments[1..].iter().copied())
                .collect(),
            _ => continue,
        };
        // `use super::{a, b}` and `use crate::x::{…}`: the braces list modules too.
        let braces = tail[end..]
            .strip_prefix("::{")
            .or_else(|| tail[end..].strip_prefix('{'));
        let mut targets = vec![absolute.clone()];
        if let Some(list) = braces.and_then(|b| b.split('}').next()) {
            for item in list.split(',') {
                let item = item.trim().split("::").next().unwrap_or("").trim();
                if !item.is_empty() && item != "self" {
                    let mut path = absolute.clone();
                    path.push(item);
                    targets.push(path);
                }
            }
        }
        for target in targets {
            if let Some(file) = resolve(&target, modules) {
                if file != module && !file.is_empty() {
                    found.insert(file);
                }
            }
        }
    }
    found
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap()
}

#[test]
fn imports_point_down_and_never_loop() {
    let modules = modules();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for (module, path) in &modules {
        if module.is_empty() {
            continue; // lib.rs declares every module
        }
        let text = std::fs::read_to_string(path).unwrap();
        let uses = imports(module, &text, &modules);
        for used in &uses {
            if top(used) != top(module) && rank(top(used)) >= rank(top(module)) {
                upward.push(format!("{module} → {used}"));
            }
        }
        graph.insert(module.clone(), uses);
    }
    assert!(
        upward.is_empty(),
        "imports that point up or sideways: {upward:#?}"
    );
    // Files of one layer may use each other, but never in a loop. A parent
    // `mod.rs` only declares its children, so edges to it are what count.
    let mut loops = Vec::new();
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, trail)) = stack.pop() {
            for next in graph.get(&at).into_iter().flatten() {
                if next == start {
                    loops.push(trail.join(" → ") + " → " + start);
                } else if seen.insert(next.clone()) {
                    let mut trail = trail.clone();
                    trail.push(next.clone());
                    stack.push((next.clone(), trail));
                }
            }
        }
    }
    assert!(loops.is_empty(), "import loops: {loops:#?}");
}

#[test]
fn no_server_file_is_too_long() {
    for (module, path) in modules() {
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(
            lines <= 650,
            "{module} has {lines} lines: split it by concern"
        );
    }
}
