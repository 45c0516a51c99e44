//! The shipped `rules/` directory is embedded in the binary with `include_dir!`, whose
//! file tracking needs a nightly compiler; this tells cargo to rebuild when a rule changes.
fn main() {
    println!("cargo:rerun-if-changed=rules");
}
