//! The website in a real browser: Debian's headless `chromium` (never a downloaded one) driven
//! by playwright-core, with axe-core checking WCAG 2.1 A/AA on every page, against the real
//! hub process seeded with the website's fixtures (`hub/tests/web/browser.mjs` says what it
//! checks). It also takes the README's screenshots, into `$GOVDC_SCREENSHOTS_DIR` (by default
//! `target/screenshots`; `docs/` to refresh the committed ones).
//!
//! A machine without the browser gets Debian's (`apt-get install chromium fonts-noto-cjk`, as
//! root), so that `cargo test --workspace` alone passes on a fresh machine; where that cannot be
//! done the test fails, never skips.
#![allow(clippy::unwrap_used)]

mod common;
mod web_fixtures;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{bin, bounded};
use govdc_test_support::hub::{HubOptions, HubProcess};
use govdc_test_support::repo_root;

const CHROMIUM: &str = "/usr/bin/chromium";

/// `hub/tests/web` with its locked npm packages installed (`npm ci` when they are missing).
fn web_dir() -> PathBuf {
    let dir = repo_root().join("hub/tests/web");
    if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
        || !dir.join("node_modules/axe-core/axe.min.js").exists()
    {
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            // playwright-core downloads nothing by itself; this says so to any script that might.
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
fn ensure_chromium() {
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

#[tokio::test(flavor = "multi_thread")]
async fn the_website_works_in_a_browser_and_has_no_wcag_violation() {
    ensure_chromium();
    let dir = web_dir();
    bounded(Duration::from_secs(240), async {
        let hub = HubProcess::start(
            &bin(),
            HubOptions::new("web-browser", "provincial", "extranet").portal(),
        )
        .unwrap();
        web_fixtures::seed(&hub).await;
        let shots = std::env::var_os("GOVDC_SCREENSHOTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/screenshots"));
        let shots = if shots.is_absolute() {
            shots
        } else {
            repo_root().join(shots)
        };
        let mut child = tokio::process::Command::new("node")
            .arg("browser.mjs")
            .current_dir(&dir)
            .env("PORTAL_URL", hub.portal_url().unwrap())
            .env("SCREENSHOTS_DIR", &shots)
            .env("CHROMIUM", CHROMIUM)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("running node: {e} (install Node.js)"));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let read = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
            tokio::spawn(async move {
                let mut text = String::new();
                tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut text)
                    .await
                    .unwrap();
                text
            })
        };
        let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
        let status = tokio::time::timeout(Duration::from_secs(180), child.wait())
            .await
            .unwrap_or_else(|_| panic!("the browser test took longer than 180 s"))
            .unwrap();
        let (out, err) = (out.await.unwrap(), err.await.unwrap());
        println!("{out}");
        eprintln!("{err}");
        assert!(
            status.success(),
            "the browser test failed ({status}):\n{out}\n{err}"
        );
        assert!(out.contains("0 failed"), "{out}");
    })
    .await;
}
