//! The crate's layers (see `docs/architecture.md`): a module may use only modules of a lower
//! layer, so the language modules import nothing of the crate and nothing imports upward.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::repo;

/// Each top-level module of `src/` and its layer.
const LAYERS: [(&str, u8); 14] = [
    ("kql", 0),
    ("eql", 0),
    ("cloudtrail", 0),
    ("new_terms", 0),
    ("threshold", 0),
    ("rule", 1),
    ("s3", 1),
    ("alert", 2),
    ("engine", 3),
    ("scan", 4),
    ("elasticsearch", 4),
    ("ops", 5),
    ("kibana", 5),
    ("cli", 6),
];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_a_module_of_its_own_layer_or_above() {
    let layers: BTreeMap<&str, u8> = LAYERS.into_iter().collect();
    let src = repo("src");
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(&src).expect("src/").flatten() {
        let path = entry.path();
        let name = path.file_stem().and_then(|n| n.to_str()).unwrap_or("");
        if matches!(name, "lib" | "main") {
            continue;
        }
        let Some(&layer) = layers.get(name) else {
            problems.push(format!(
                "src/{name}: a module the layer map does not know; add it to LAYERS here and to docs/architecture.md"
            ));
            continue;
        };
        let mut files = Vec::new();
        if path.is_dir() {
            sources(&path, &mut files);
        } else {
            files.push(path.clone());
        }
        for file in files {
            let text = std::fs::read_to_string(&file).expect("a source file");
            for (n, line) in text.lines().enumerate() {
                let mut rest = line;
                while let Some(at) = rest.find("crate::") {
                    let after = &rest[at + 7..];
                    let used: String = after
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if used != name {
                        match layers.get(used.as_str()) {
                            Some(&other) if other < layer => {}
                            _ => problems.push(format!(
                                "{}:{}: `{name}` (layer {layer}) uses `{used}`",
                                file.strip_prefix(repo("")).unwrap_or(&file).display(),
                                n + 1
                            )),
                        }
                    }
                    rest = &after[used.len()..];
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
