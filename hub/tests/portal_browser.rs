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
use common::{bin, bounded, channel};
use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::DecideApplicationRequest;
use govdc_hub_api::v1::portal_client::PortalClient;
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
        // The platform operator's part of the application flow: the script writes the number
        // of the application it sent to this file, and this side approves it over gRPC, as
        // `govdc-operator dataset approve` does.
        let approvals = hub.dir.join("approve");
        let operator = {
            let approvals = approvals.clone();
            let token = hub.token("admin", "operator").unwrap();
            let mut portal =
                PortalClient::with_interceptor(channel(&hub), BearerToken::new(&token).unwrap());
            tokio::spawn(async move {
                loop {
                    if let Ok(number) = std::fs::read_to_string(&approvals)
                        && !number.trim().is_empty()
                    {
                        return portal
                            .decide_application(DecideApplicationRequest {
                                application_id: number.trim().to_owned(),
                                approve: true,
                                reason: String::new(),
                                ttl_seconds: 3600,
                            })
                            .await
                            .map(|_| ());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let (success, out, err) = run_script(
            "browser.mjs",
            &[
                ("PORTAL_URL", hub.portal_url().unwrap()),
                ("SCREENSHOTS_DIR", shots.to_string_lossy().into_owned()),
                ("APPROVAL_FILE", approvals.to_string_lossy().into_owned()),
            ],
            Duration::from_secs(180),
        )
        .await;
        if operator.is_finished() {
            operator.await.unwrap().expect("the approval");
        } else {
            operator.abort();
        }
        println!("{out}");
        eprintln!("{err}");
        assert!(success, "the browser test failed:\n{out}\n{err}");
        assert!(out.contains("0 failed"), "{out}");
    })
    .await;
}
