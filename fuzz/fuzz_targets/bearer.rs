//! Bearer-token parsing: the gRPC side (`govdc_hub_api::auth::bearer_token` and
//! `govdc_hub::auth::Authenticator`, which verifies the JWT) and the portal's
//! (`govdc_hub::portal::http::bearer`, for conditional downloads).
//!
//! Input: the `authorization` value a client sends; or, after a leading `0xff`, a change to a
//! valid token (a position and a byte) to see whether a changed token still passes.
//!
//! Checks:
//! - a token taken from a header is what follows the scheme, trimmed and not empty, and the
//!   scheme is `Bearer` in any case (RFC 9110 §11.1: the scheme is case-insensitive);
//! - the gRPC parser and the portal's take the same token from the same header;
//! - a token that verifies carries exactly the claims that were signed (a changed token never
//!   passes with other claims), and a member token is only accepted for a member;
//! - refusals are `UNAUTHENTICATED` or `PERMISSION_DENIED`, never another code or a panic.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use govdc_hub::auth::Authenticator;
use govdc_hub::portal::http::bearer;
use govdc_hub_api::auth::{Claims, Role, TokenKey, bearer_token};
use libfuzzer_sys::fuzz_target;
use tonic::Code;
use tonic::metadata::MetadataValue;

const NODE: &str = "hz-municipal";
const MEMBER: &str = "11330100002482118K";

struct Fixture {
    auth: Authenticator,
    tokens: Vec<(String, Claims)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = TokenKey::new(b"fuzzing key of the node, 32 bytes+".to_vec())
            .unwrap_or_else(|e| panic!("{e}"));
        let auth = Authenticator::new(key.clone(), NODE);
        auth.set_members([MEMBER.to_owned()]);
        let year = Duration::from_secs(365 * 24 * 3600);
        let tokens = [
            Claims::new("operator", Role::Admin, NODE, year),
            Claims::new(MEMBER, Role::Member, NODE, year),
            Claims::new("91330100MA2B3C4D5E", Role::Member, NODE, year),
            Claims::new("zj-provincial", Role::Node, NODE, year),
            Claims::new("operator", Role::Admin, "other-node", year),
        ]
        .into_iter()
        .map(|claims| (key.issue(&claims).unwrap_or_else(|e| panic!("{e}")), claims))
        .collect();
        Fixture { auth, tokens }
    })
}

fn check_header(header: &[u8]) {
    let fixture = fixture();
    let Ok(value) = MetadataValue::try_from(header) else {
        return;
    };
    let mut request = tonic::Request::new(());
    request.metadata_mut().insert("authorization", value);
    let grpc = bearer_token(request.metadata());
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(value) = axum::http::HeaderValue::from_bytes(header) {
        headers.insert(axum::http::header::AUTHORIZATION, value);
    }
    let portal = bearer(&headers);
    for token in [grpc.map(str::to_owned), portal.clone()]
        .into_iter()
        .flatten()
    {
        let text = std::str::from_utf8(header).unwrap_or_default().trim();
        let (scheme, rest) = text.split_once(' ').unwrap_or_default();
        assert!(
            scheme.eq_ignore_ascii_case("bearer"),
            "{text:?} gave a token"
        );
        assert_eq!(rest.trim(), token);
        assert!(!token.is_empty());
    }
    assert_eq!(
        grpc,
        portal.as_deref(),
        "{:?}: the gRPC parser and the portal's disagree",
        String::from_utf8_lossy(header)
    );

    let allowed = [Role::Admin, Role::Member];
    match fixture.auth.caller(&request, "Fuzz.Call", &allowed) {
        Ok(caller) => {
            let (_, claims) = fixture
                .tokens
                .iter()
                .find(|(_, c)| c.sub == caller.subject && c.role == caller.role)
                .unwrap_or_else(|| panic!("{caller:?} passed with claims nobody signed"));
            assert_eq!(claims.aud, NODE, "a token for another node passed");
            assert!(allowed.contains(&caller.role));
            if caller.role == Role::Member {
                assert_eq!(
                    caller.subject, MEMBER,
                    "a member token of a non-member passed"
                );
            }
        }
        Err(status) => assert!(
            matches!(
                status.code(),
                Code::Unauthenticated | Code::PermissionDenied
            ),
            "{status:?}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0xff, change)) if change.len() >= 3 => {
            // A valid token, with one byte changed.
            let fixture = fixture();
            let (token, _) = &fixture.tokens[usize::from(change[0]) % fixture.tokens.len()];
            let mut bytes = token.clone().into_bytes();
            let at = usize::from(u16::from_le_bytes([change[1], change[2]])) % bytes.len();
            bytes[at] = change.get(3).copied().unwrap_or(b'A');
            let mut header = b"Bearer ".to_vec();
            header.extend_from_slice(&bytes);
            check_header(&header);
        }
        _ => check_header(data),
    }
});
