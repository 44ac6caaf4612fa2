//! A client the project did not write: grpcurl, built from its Go module (tests/grpcurl), lists
//! the services through reflection, gets SERVING from the health service, and calls the API
//! with a bearer token.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::bin;
use govdc_test_support::hub::{HubOptions, HubProcess};
use govdc_test_support::repo_root;

fn grpcurl() -> PathBuf {
    let script = repo_root().join("tests/grpcurl/build.sh");
    let output = Command::new("bash").arg(&script).output().unwrap();
    assert!(
        output.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

fn run(grpcurl: &PathBuf, args: &[&str]) -> (Output, String) {
    let output = Command::new(grpcurl).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

#[test]
fn grpcurl_lists_the_services_and_gets_serving() {
    let grpcurl = grpcurl();
    let hub =
        HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
    let address = hub.grpc_address();

    let (output, text) = run(
        &grpcurl,
        &["-plaintext", "-max-time", "20", &address, "list"],
    );
    assert!(output.status.success(), "{text}");
    for service in [
        "govdc.hub.v1.Node",
        "govdc.hub.v1.Membership",
        "govdc.hub.v1.Catalog",
        "govdc.hub.v1.Exchange",
        "govdc.hub.v1.Audit",
        "govdc.hub.v1.Statistics",
        "govdc.hub.v1.Federation",
        "grpc.health.v1.Health",
    ] {
        assert!(
            text.lines().any(|l| l.trim() == service),
            "{service} not listed:\n{text}"
        );
    }
    let (output, text) = run(
        &grpcurl,
        &[
            "-plaintext",
            "-max-time",
            "20",
            &address,
            "describe",
            "govdc.hub.v1.Exchange",
        ],
    );
    assert!(
        output.status.success() && text.contains("rpc Publish"),
        "{text}"
    );

    let (output, text) = run(
        &grpcurl,
        &[
            "-plaintext",
            "-max-time",
            "20",
            "-d",
            r#"{"service":""}"#,
            &address,
            "grpc.health.v1.Health/Check",
        ],
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains(r#""status": "SERVING""#), "{text}");

    // Through reflection, with and without a token.
    let (output, text) = run(
        &grpcurl,
        &[
            "-plaintext",
            "-max-time",
            "20",
            &address,
            "govdc.hub.v1.Node/GetNodeInfo",
        ],
    );
    assert!(!output.status.success());
    assert!(text.contains("Unauthenticated"), "{text}");
    let header = format!(
        "authorization: Bearer {}",
        hub.token("admin", "operator").unwrap()
    );
    let (output, text) = run(
        &grpcurl,
        &[
            "-plaintext",
            "-max-time",
            "20",
            "-H",
            &header,
            &address,
            "govdc.hub.v1.Node/GetNodeInfo",
        ],
    );
    assert!(output.status.success(), "{text}");
    assert!(text.contains(r#""name": "national""#), "{text}");
    assert!(text.contains("LEVEL_NATIONAL"), "{text}");
}
