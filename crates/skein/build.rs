//! Makes sure `web/dist` exists (so the embedded web app compiles before the UI is built) and
//! rebuilds the binary when the UI build changes.

fn main() {
    let dist = std::path::Path::new("../../web/dist");
    // Best effort: a read-only source tree still compiles (`allow_missing` on the embed).
    let _ = std::fs::create_dir_all(dist);
    println!("cargo:rerun-if-changed=../../web/dist");
    println!("cargo:rerun-if-changed=build.rs");
}
