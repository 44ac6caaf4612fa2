//! The website in a real browser: Debian's headless `chromium` (never a downloaded one) driven
//! by playwright-core, with axe-core checking WCAG 2.1 A/AA on every page, against the real
//! hub process seeded with the website's fixtures (`hub/tests/web/browser.mjs` says what it
//! checks). It also takes the README's screenshots, into `$GOVDC_SCREENSHOTS_DIR` (by default
//! `target/screenshots`; `docs/` to refresh the committed ones).
//!
//! It fails, never skips, without the browser or Node: `.ci/run` installs both.
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

#[tokio::test(flavor = "multi_thread")]
async fn the_website_works_in_a_browser_and_has_no_wcag_violation() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: apt-get install -y chromium (the browser test never downloads one)"
    );
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
