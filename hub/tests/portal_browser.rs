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

mod browser_support;
mod common;
mod web_fixtures;

use std::time::Duration;

use browser_support::{ensure_chromium, run_script, screenshots_dir};
use common::{bin, bounded};
use govdc_test_support::hub::{HubOptions, HubProcess};

#[tokio::test(flavor = "multi_thread")]
async fn the_website_works_in_a_browser_and_has_no_wcag_violation() {
    ensure_chromium();
    bounded(Duration::from_secs(240), async {
        let hub = HubProcess::start(
            &bin(),
            HubOptions::new("web-browser", "provincial", "extranet").portal(),
        )
        .unwrap();
        web_fixtures::seed(&hub).await;
        let shots = screenshots_dir();
        let (success, out, err) = run_script(
            "browser.mjs",
            &[
                ("PORTAL_URL", hub.portal_url().unwrap()),
                ("SCREENSHOTS_DIR", shots.to_string_lossy().into_owned()),
            ],
            Duration::from_secs(180),
        )
        .await;
        println!("{out}");
        eprintln!("{err}");
        assert!(success, "the browser test failed:\n{out}\n{err}");
        assert!(out.contains("0 failed"), "{out}");
    })
    .await;
}
