//! The checked-in `include/codex.h` is what cbindgen generates from the
//! crate. `CODEX_FFI_REGENERATE=1 cargo test -p codex-ffi --test header`
//! rewrites it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn header_is_generated_from_the_crate() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen cannot generate the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = crate_dir.join("include/codex.h");
    if std::env::var_os("CODEX_FFI_REGENERATE").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let diff = similar::TextDiff::from_lines(&checked_in, &generated)
            .unified_diff()
            .header("include/codex.h (checked in)", "generated")
            .to_string();
        panic!(
            "include/codex.h is stale; regenerate it with\n  \
             CODEX_FFI_REGENERATE=1 cargo test -p codex-ffi --test header\n{diff}"
        );
    }
}
