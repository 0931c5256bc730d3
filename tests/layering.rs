//! The house's layering, checked: every `crate::…` path in `src/` (imports and paths in code alike,
//! comments aside) must point along an allowed arrow. A new arrow is a decision: add it here, and to
//! the layering line in `src/lib.rs`, in the same change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level module → the modules it may reach (itself always).
const ALLOWED: &[(&str, &[&str])] = &[
    // leaves
    ("file_io", &[]),
    ("labels", &[]),
    ("picture", &["file_io"]),
    ("recipe", &["picture", "file_io"]),
    // pixels in, pixels out: a sketch's closed outlines filled before the model sees it
    ("outline_fill", &["picture"]),
    // tensors in, tensors out: nothing above it
    ("engine", &["file_io", "picture"]),
    // a recipe planned and run
    (
        "job",
        &[
            "engine",
            "recipe",
            "picture",
            "file_io",
            "labels",
            "outline_fill",
        ],
    ),
    // the thread the app talks to
    ("worker", &["job", "engine", "recipe", "picture", "file_io"]),
    // documents and projects: plain data, no tensors
    ("paint", &["recipe", "picture", "file_io", "labels"]),
    // the window: never the engine or the job layer, only the worker
    (
        "app",
        &["paint", "worker", "recipe", "picture", "labels", "file_io"],
    ),
    // the command line: the engine only through the job layer (`info`/`convert` below)
    (
        "cli",
        &[
            "job", "recipe", "picture", "paint", "labels", "file_io", "app",
        ],
    ),
    // the library's root and the binary
    ("lib", &[]),
    ("main", &["cli"]),
];

/// Files allowed one more arrow than their module: the commands that read model files directly.
const EXCEPTIONS: &[(&str, &str)] = &[("cli/info.rs", "engine")];

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

/// The `crate::module` names a line of code reaches (`//` comments stripped). A grouped
/// `crate::{a, b}` reads as `{`, which no row allows: name each module in its own path.
fn reached(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    code.match_indices("crate::")
        .map(|(i, m)| {
            let rest = &code[i + m.len()..];
            if rest.starts_with('{') {
                return "{".to_string();
            }
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn every_arrow_is_allowed() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let module = rel.split(['/', '.']).next().unwrap();
        let may = allowed
            .get(module)
            .unwrap_or_else(|| panic!("src/{rel}: module `{module}` has no row in ALLOWED"));
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for target in reached(line) {
                let ok = target == module
                    || target.is_empty()
                    || may.contains(&target.as_str())
                    || EXCEPTIONS.contains(&(rel.as_str(), target.as_str()));
                if !ok {
                    wrong.push(format!("src/{rel}:{}: {module} → {target}", n + 1));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows the layering does not allow:\n{}",
        wrong.join("\n")
    );
}

/// Inside the engine: the consistency maths (`engine/cm`) reads nothing of the network's modules
/// (`engine/model`), which call into it; the sampling config it reads lives in `cm/sampling.rs`.
#[test]
fn the_consistency_maths_does_not_reach_into_the_model() {
    let cm = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine/cm");
    let mut files = Vec::new();
    rust_files(&cm, &mut files);
    let wrong: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            text.lines()
                .enumerate()
                .filter(|(_, l)| {
                    let code = l.split("//").next().unwrap_or("");
                    code.contains("engine::model") || code.contains("super::super::model")
                })
                .map(|(n, _)| format!("src/engine/cm/{name}:{}", n + 1))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(wrong.is_empty(), "cm → model:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_a_wrong_arrow() {
    assert_eq!(reached("use crate::engine::x; // crate::app"), ["engine"]);
    assert_eq!(
        reached("    let d = crate::worker::select_device(x)?;"),
        ["worker"]
    );
    assert!(reached("// use crate::engine").is_empty());
    assert_eq!(reached("use crate::{engine, app};"), ["{"]);
}
