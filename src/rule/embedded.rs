//! The shipped rules (the repository's `rules/` directory), built into the binary so that
//! `rule-runner scan` and `rules list` work from any directory.

use std::path::{Path, PathBuf};

use include_dir::{Dir, File, include_dir};

use super::load::{LoadReport, check_duplicate_ids, is_rule_file_name, load_bytes_into};

// include_dir cannot make Cargo watch the directory on stable Rust; `build.rs` does (the test
// `embedded_rules_match_the_directory` still guards against a stale build).
static SHIPPED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/rules");

/// How built-in files are named in reports: `<built-in>/aws/<file>.toml`.
pub const BUILT_IN: &str = "<built-in>";

/// Every file under `rules/`, with its path relative to it, in path order.
pub fn shipped_files() -> Vec<(PathBuf, &'static [u8])> {
    fn walk(dir: &'static Dir<'static>, out: &mut Vec<&'static File<'static>>) {
        out.extend(dir.files());
        for sub in dir.dirs() {
            walk(sub, out);
        }
    }
    let mut files = Vec::new();
    walk(&SHIPPED, &mut files);
    let mut files: Vec<_> = files
        .into_iter()
        .map(|f| (f.path().to_owned(), f.contents()))
        .collect();
    files.sort();
    files
}

/// The contents of a shipped file, by a path as reports name it (`<built-in>/aws/x.toml`).
pub fn shipped_file(path: &Path) -> Option<&'static [u8]> {
    let relative = path.strip_prefix(BUILT_IN).ok()?;
    SHIPPED.get_file(relative).map(File::contents)
}

/// Load the shipped rules.
pub fn shipped_rules() -> LoadReport {
    let mut report = LoadReport::default();
    for (path, contents) in shipped_files() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if is_rule_file_name(name) {
            load_bytes_into(&Path::new(BUILT_IN).join(&path), contents, &mut report);
        }
    }
    check_duplicate_ids(&mut report);
    report
}
