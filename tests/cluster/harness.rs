//! The harness leaves no etcd or kube-apiserver behind, even when a test panics.

use std::path::Path;
use std::time::{Duration, Instant};

use apikey_operator_test_support::envtest;

const CHILD_ENV: &str = "APIKEY_OPERATOR_HARNESS_CHILD";

/// Processes whose command line mentions `dir` (etcd and kube-apiserver get paths in it).
fn processes_using(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&needle))
        })
        .collect()
}

#[test]
fn control_plane_processes_die_with_a_panicking_test_binary() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // Child role: start the control plane, report it, and panic.
        let control_plane = envtest::control_plane();
        println!("control-plane-dir={}", control_plane.dir.display());
        println!(
            "control-plane-processes={}",
            processes_using(&control_plane.dir).len()
        );
        panic!("deliberate panic with a running control plane");
    }

    let assets = &envtest::control_plane().assets;
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "harness::control_plane_processes_die_with_a_panicking_test_binary",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .env("KUBEBUILDER_ASSETS", assets)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "the child test was meant to fail:\n{stdout}"
    );
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("child printed no {name}:\n{stdout}"))
    };
    let dir = Path::new(field("control-plane-dir="));
    assert_eq!(
        field("control-plane-processes="),
        "2",
        "etcd and kube-apiserver were running in the child"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_using(dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        processes_using(dir),
        Vec::<u32>::new(),
        "processes outlived the panicking test binary"
    );
}
