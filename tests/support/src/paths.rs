//! Where things are. Cargo's `CARGO_BIN_EXE_<name>` and `CARGO_TARGET_TMPDIR` are set only
//! when it compiles the integration tests and benchmarks of the package owning the binary,
//! never for a library they use, so the paths are found from the running test binary
//! instead: Cargo builds it into `<target dir>/<profile>/deps/`.

use std::path::{Path, PathBuf};

/// The repository's root (this crate is its `tests/support/`).
pub(crate) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("the test-support crate lives two levels below the repository")
}

/// `<target dir>/<profile>`, holding the binaries of the build the running tests belong to.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the running test binary has a path");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in <target>/<profile>/deps", exe.display()))
        .to_path_buf()
}

/// The crate's `apikey-operator` binary, the one `CARGO_BIN_EXE_apikey-operator` names.
pub(crate) fn operator_binary() -> PathBuf {
    profile_dir().join("apikey-operator")
}

/// A directory for the tests' scratch files, the one `CARGO_TARGET_TMPDIR` names.
pub(crate) fn target_tmpdir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("the profile directory is in the target directory")
        .join("tmp")
}

/// A test tool: the path in environment variable `env` (set by `make test`), or the last
/// line printed by `script` (relative to the repository), which builds or installs it once.
/// Never skips: when the script fails, the test fails saying `what` is missing.
pub fn tool(env: &str, script: &str, what: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let script = repo().join(script);
    let output = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(output.status.success(), "{} failed: no {what}", script.display());
    let stdout = String::from_utf8(output.stdout).unwrap();
    PathBuf::from(
        stdout
            .lines()
            .last()
            .unwrap_or_else(|| panic!("{} printed no path", script.display())),
    )
}
