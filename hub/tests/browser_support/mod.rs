//! What the browser tests need on the machine: Debian's headless `chromium` (installed with
//! apt-get when missing, never downloaded) and `hub/tests/web`'s locked npm packages
//! (playwright-core, axe-core), and a way to run one of its scripts, bounded in time.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use govdc_test_support::repo_root;

/// Debian's chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `hub/tests/web` with its locked npm packages installed (`npm ci` when they are missing).
pub fn web_dir() -> PathBuf {
    let dir = repo_root().join("hub/tests/web");
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
        || !dir.join("node_modules/axe-core/axe.min.js").exists()
    {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "running npm ci in {}: {e} (install Node.js and npm)",
                    dir.display()
                )
            });
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    dir
}

/// Installs Debian's chromium (and the CJK fonts its pages need) when it is missing.
pub fn ensure_chromium() {
    if std::path::Path::new(CHROMIUM).exists() {
        return;
    }
    eprintln!(
        "{CHROMIUM} is missing; installing Debian's chromium and fonts-noto-cjk with apt-get"
    );
    for args in [
        &["update"][..],
        &["install", "-y", "chromium", "fonts-noto-cjk"][..],
    ] {
        let status = std::process::Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "apt-get {} failed: install chromium and fonts-noto-cjk as root (the browser test never downloads a browser)",
            args.join(" ")
        );
    }
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is still missing after apt-get install chromium"
    );
}

/// Where screenshots go: `$GOVDC_SCREENSHOTS_DIR` (relative to the repository), by default
/// `target/screenshots`.
pub fn screenshots_dir() -> PathBuf {
    let shots = std::env::var_os("GOVDC_SCREENSHOTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/screenshots"));
    if shots.is_absolute() {
        shots
    } else {
        repo_root().join(shots)
    }
}

/// Runs `node script` in `hub/tests/web` with `env`, at most `limit`; its output, and whether
/// it succeeded.
pub async fn run_script(
    script: &str,
    env: &[(&str, String)],
    limit: Duration,
) -> (bool, String, String) {
    let dir = web_dir();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(script)
        .current_dir(&dir)
        .env("CHROMIUM", CHROMIUM)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("running node: {e} (install Node.js)"));
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} took longer than {limit:?}"))
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
