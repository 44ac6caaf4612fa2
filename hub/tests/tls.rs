//! TLS: a node serving gRPC over TLS (`tls.certFile`/`tls.keyFile`) answers clients that trust its
//! CA, not plaintext ones, and a child federates with it over https with the CA from SetParent.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::node_client::NodeClient;
use govdc_hub_api::v1::{GetNodeInfoRequest, ListResourcesRequest, SetParentRequest, ShareType};
use govdc_test_support::hub::{HubOptions, HubProcess};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA and a serving certificate for 127.0.0.1 and localhost, signed by it.
fn certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=govdc test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=national",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_node_serves_trusting_clients_and_federates_over_https() {
    bounded(Duration::from_secs(90), async {
        let certs = govdc_test_support::repo_root()
            .join("target/tmp")
            .join(govdc_test_support::unique_prefix("tls"));
        certificates(&certs);
        let cert = certs.join("server.pem");
        let key = certs.join("server.key");
        let national = HubProcess::start(
            &bin(),
            HubOptions::new("national", "national", "extranet")
                .env("GOVDC_HUB_TLS_CERT_FILE", cert.to_str().unwrap())
                .env("GOVDC_HUB_TLS_KEY_FILE", key.to_str().unwrap()),
        )
        .unwrap();
        let https = format!("https://{}", national.grpc_address());
        let ca_pem = std::fs::read_to_string(certs.join("ca.pem")).unwrap();

        let channel = Endpoint::from_shared(https.clone())
            .unwrap()
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca_pem)))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let admin = BearerToken::new(&national.token("admin", "operator").unwrap()).unwrap();
        let info = NodeClient::with_interceptor(channel, admin.clone())
            .get_node_info(GetNodeInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.name, "national");

        // A plaintext client gets nowhere.
        let plaintext = Endpoint::from_shared(national.endpoint())
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        let refused = NodeClient::with_interceptor(plaintext, admin)
            .get_node_info(GetNodeInfoRequest {})
            .await;
        assert!(
            refused.is_err(),
            "a plaintext call to a TLS node succeeded: {refused:?}"
        );

        // A child federates over https, trusting the CA given with SetParent.
        let zhejiang = HubProcess::start(
            &bin(),
            HubOptions::new("zhejiang", "provincial", "extranet")
                .env("GOVDC_HUB_FEDERATION_INTERVAL", "1s"),
        )
        .unwrap();
        let dept = credit_code(101);
        join(&mut Clients::admin(&zhejiang), &dept, "dept").await;
        register(
            &mut Clients::member(&zhejiang, &dept),
            &format!("{dept}-0001"),
            ShareType::Conditional,
        )
        .await;
        Clients::admin(&zhejiang)
            .node
            .set_parent(SetParentRequest {
                endpoint: https.clone(),
                token: national.token("node", "zhejiang").unwrap(),
                ca_pem: ca_pem.clone(),
            })
            .await
            .unwrap();
        let national_channel = Endpoint::from_shared(https)
            .unwrap()
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca_pem)))
            .unwrap()
            .connect_lazy();
        let token = BearerToken::new(&national.token("admin", "operator").unwrap()).unwrap();
        let catalog = govdc_hub_api::v1::catalog_client::CatalogClient::with_interceptor(
            national_channel,
            token,
        );
        eventually(
            Duration::from_secs(20),
            "the child's resource on the TLS parent",
            || {
                let mut catalog = catalog.clone();
                async move {
                    let page = catalog
                        .list_resources(ListResourcesRequest::default())
                        .await
                        .ok()?
                        .into_inner();
                    (page.resources.len() == 1).then_some(())
                }
            },
        )
        .await;

        // Without the CA, the child cannot verify the parent, and says so.
        Clients::admin(&zhejiang)
            .node
            .set_parent(SetParentRequest {
                endpoint: format!("https://{}", national.grpc_address()),
                token: national.token("node", "zhejiang").unwrap(),
                ca_pem: std::fs::read_to_string(certs.join("server.pem")).unwrap(),
            })
            .await
            .unwrap();
        let info = eventually(
            Duration::from_secs(20),
            "a TLS error in NodeInfo",
            || async {
                let info = Clients::admin(&zhejiang)
                    .node
                    .get_node_info(GetNodeInfoRequest {})
                    .await
                    .unwrap()
                    .into_inner();
                (!info.parent_error.is_empty()).then_some(info)
            },
        )
        .await;
        assert!(
            info.parent_error.contains("refused the catalog"),
            "{}",
            info.parent_error
        );
    })
    .await;
}
