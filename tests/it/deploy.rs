//! The deployment files under `deploy/` (systemd unit, Dockerfile, docker-compose,
//! Kubernetes manifests, Grafana dashboard) are only ever used outside this repository, so
//! nothing else would notice when a change to the binary, its configuration or its
//! metrics leaves them behind. `scripts/check-deploy` checks each of them against the
//! binary under test: `check-config` on every configuration they ship, the unit's own
//! start and reload command lines run for real (a reload under load loses no request),
//! the healthchecks against a live gateway, the dashboard against the exported metrics.

use std::process::Command;

use crate::common::gateway::BIN;

#[test]
fn deploy_files_pass_check_deploy() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check-deploy");
    let out = Command::new("bash")
        .arg(script)
        // The binary this test run built (env!("CARGO_BIN_EXE_vigile")), so the script
        // neither builds nor picks a stale target/debug/vigile.
        .env("VIGILE_BIN", BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("bash runs scripts/check-deploy");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let failed: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("FAIL") || l.starts_with("check-deploy:"))
        .collect();
    assert!(
        out.status.success(),
        "scripts/check-deploy failed ({}):\n{}\n\nfull report:\n{report}",
        out.status,
        failed.join("\n")
    );
    // Shown with --nocapture: which checks ran and which optional tools were skipped.
    println!("{report}");
}
