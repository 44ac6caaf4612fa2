//! Applications for a conditional dataset (有条件开放) on the real hub process, driven with a
//! real HTTP client and the hub's gRPC admin API: the form and its CSRF refusal, bad forms
//! answered with a 400 page, the application stored and audited, the operator's decision,
//! the token collected exactly once from the status page and then downloading the file, wrong
//! or expired links, and an anonymous download sent to the form.
#![allow(clippy::unwrap_used)]

mod common;
mod web_fixtures;

use std::time::Duration;

use common::{bin, bounded, channel};
use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::audit_client::AuditClient;
use govdc_hub_api::v1::portal_client::PortalClient;
use govdc_hub_api::v1::{
    ApplicationState, AuditRecord, DecideApplicationRequest, ListApplicationsRequest,
    ListAuditRecordsRequest, VerifyAuditRequest,
};
use govdc_test_support::hub::{HubOptions, HubProcess};
use web_fixtures::{BUS, CLINICS, gzip, sha256};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// A browser's GET.
async fn get(url: &str, cookie: Option<&str>) -> Answer {
    let mut request = http().get(url).header("Accept", "text/html,*/*;q=0.8");
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    answer(request).await
}

/// A browser's form POST of `body` (already urlencoded).
async fn post(url: &str, cookie: Option<&str>, body: impl Into<reqwest::Body>) -> Answer {
    let mut request = http()
        .post(url)
        .header("Accept", "text/html,*/*;q=0.8")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    answer(request).await
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// The form's CSRF field and the cookie that goes with it.
fn csrf_of(page: &Answer) -> (String, String) {
    let marker = "name=\"csrf\" value=\"";
    let at = page
        .body
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf field in {}", page.body));
    let field = page.body[at + marker.len()..]
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let cookie = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("govdc_portal_csrf="))
        .unwrap_or_else(|| panic!("no CSRF cookie: {:?}", page.headers));
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(pair, format!("govdc_portal_csrf={field}"));
    (field, pair)
}

const APPLICANT: &str = "张三 <script>window.__x=1</script>";
const ORGANISATION: &str = "浙江大学公共卫生学院 & \"co\"";
const PURPOSE: &str = "研究杭州市医疗机构的分布与居民就诊可及性。\n第二段：仅用于学术论文。";
const CONTACT: &str = "zhangsan@zju.edu.cn";

fn application(csrf: &str) -> String {
    encode(&[
        ("csrf", csrf),
        ("applicant", APPLICANT),
        ("organisation", ORGANISATION),
        ("purpose", PURPOSE),
        ("contact", CONTACT),
    ])
}

type Portal = PortalClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
>;

fn admin_portal(hub: &HubProcess) -> Portal {
    let token = hub.token("admin", "operator").unwrap();
    PortalClient::with_interceptor(channel(hub), BearerToken::new(&token).unwrap())
}

async fn audit(hub: &HubProcess) -> Vec<AuditRecord> {
    let token = hub.token("admin", "operator").unwrap();
    let mut client = AuditClient::with_interceptor(channel(hub), BearerToken::new(&token).unwrap());
    let mut out = Vec::new();
    loop {
        let after_seq = out.last().map_or(0, |r: &AuditRecord| r.seq);
        let page = client
            .list_audit_records(ListAuditRecordsRequest {
                after_seq,
                limit: 1000,
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

fn detail(record: &AuditRecord) -> serde_json::Value {
    serde_json::from_str(&record.detail).unwrap()
}

/// The status page's path from a submission's `Location`.
fn status_path(submitted: &Answer) -> String {
    assert_eq!(submitted.status, 303, "{}", submitted.body);
    let location = submitted.headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/applications/app-"), "{location}");
    location
}

#[tokio::test(flavor = "multi_thread")]
async fn an_application_is_stored_audited_approved_and_its_token_collected_once() {
    bounded(Duration::from_secs(180), async {
        let mut hub = HubProcess::start(
            &bin(),
            HubOptions::new("web-apply", "provincial", "extranet").portal(),
        )
        .unwrap();
        let url = hub.portal_url().unwrap();
        let published = web_fixtures::seed(&hub).await;
        let clinics_csv = &published.iter().find(|p| p.id == CLINICS).unwrap().csv;
        let mut portal = admin_portal(&hub);

        // The dataset page leads to the form.
        let dataset = get(&format!("{url}/datasets/{CLINICS}?lang=en"), None).await;
        assert!(
            dataset
                .body
                .contains(&format!("href=\"/datasets/{CLINICS}/apply?lang=en\"")),
            "{}",
            dataset.body
        );
        let form_url = format!("{url}/datasets/{CLINICS}/apply");
        let form = get(&form_url, None).await;
        assert_eq!(form.status, 200);
        assert!(form.body.contains("<html lang=\"zh-CN\">"));
        for field in ["applicant", "organisation", "purpose", "contact"] {
            assert!(form.body.contains(&format!("name=\"{field}\"")), "{field}");
        }
        assert_eq!(form.headers["cache-control"], "no-store");
        let (csrf, cookie) = csrf_of(&form);
        // The same browser keeps its token across forms (two open tabs both work).
        let again = get(&form_url, Some(&cookie)).await;
        assert!(
            again
                .body
                .contains(&format!("name=\"csrf\" value=\"{csrf}\""))
        );
        assert!(again.headers.get("set-cookie").is_none());
        // An open dataset takes no application.
        let open = get(&format!("{url}/datasets/{BUS}/apply"), None).await;
        assert_eq!(open.status, 409);
        assert_eq!(
            get(&format!("{url}/datasets/no.such/apply"), None)
                .await
                .status,
            404
        );

        // A cross-site post (no cookie, or a field that differs from it) stores nothing.
        let forged = post(&form_url, None, application(&csrf)).await;
        assert_eq!(forged.status, 403, "{}", forged.body);
        assert!(forged.body.contains("表单已失效"), "{}", forged.body);
        let other = "0".repeat(64);
        let forged = post(&form_url, Some(&cookie), application(&other)).await;
        assert_eq!(forged.status, 403);
        let forged = post(
            &form_url,
            Some(&format!("govdc_portal_csrf={other}")),
            application(&csrf),
        )
        .await;
        assert_eq!(forged.status, 403);

        // Bad forms: a 400 page, nothing stored.
        let huge = encode(&[
            ("csrf", &csrf),
            ("applicant", "a"),
            ("purpose", &"长".repeat(20_000)),
        ]);
        let refused = post(&format!("{form_url}?lang=en"), Some(&cookie), huge).await;
        assert_eq!(refused.status, 400);
        assert!(
            refused
                .body
                .contains("<code class=\"parameter\">form</code>"),
            "{}",
            refused.body
        );
        let unknown = post(
            &form_url,
            Some(&cookie),
            format!("{}&admin=1", application(&csrf)),
        )
        .await;
        assert_eq!(unknown.status, 400);
        assert!(
            unknown
                .body
                .contains("<code class=\"parameter\">admin</code>"),
            "{}",
            unknown.body
        );
        let repeated = post(
            &form_url,
            Some(&cookie),
            format!("{}&contact=x", application(&csrf)),
        )
        .await;
        assert_eq!(repeated.status, 400);
        assert!(
            repeated
                .body
                .contains("<code class=\"parameter\">contact</code>")
        );
        let not_utf8 = post(
            &form_url,
            Some(&cookie),
            application(&csrf).replace("contact=", "contact=%FF"),
        )
        .await;
        assert_eq!(not_utf8.status, 400);
        assert!(
            not_utf8
                .body
                .contains("<code class=\"parameter\">contact</code>"),
            "{}",
            not_utf8.body
        );
        let json_body = answer(
            http()
                .post(&form_url)
                .header("Content-Type", "application/json")
                .header("Cookie", &cookie)
                .body("{}"),
        )
        .await;
        assert_eq!(json_body.status, 400);
        assert!(json_body.body.contains("Content-Type"));
        let bad_lang = post(
            &format!("{form_url}?lang=fr"),
            Some(&cookie),
            application(&csrf),
        )
        .await;
        assert_eq!(bad_lang.status, 400);
        // Fields the form refuses come back with the form, what was written kept (escaped), and
        // each problem named.
        let incomplete = post(
            &format!("{form_url}?lang=en"),
            Some(&cookie),
            encode(&[
                ("csrf", &csrf),
                ("applicant", APPLICANT),
                ("organisation", ""),
                ("purpose", "short"),
                ("contact", "not a contact"),
            ]),
        )
        .await;
        assert_eq!(incomplete.status, 400);
        assert!(
            incomplete.body.contains("Enter the Organisation."),
            "{}",
            incomplete.body
        );
        assert!(
            incomplete
                .body
                .contains("The Purpose must be at least 10 characters.")
        );
        assert!(
            incomplete
                .body
                .contains("Enter an e-mail address or a telephone number.")
        );
        assert!(incomplete.body.contains("aria-invalid=\"true\""));
        assert!(
            !incomplete.body.contains("<script>window.__x"),
            "the applicant's text is escaped"
        );
        assert!(
            incomplete
                .body
                .contains("&#60;script&#62;window.__x=1&#60;/script&#62;"),
            "{}",
            incomplete.body
        );
        let listed = portal
            .list_applications(ListApplicationsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .applications;
        assert!(listed.is_empty(), "refused forms stored {listed:?}");

        // An anonymous download: a browser lands on the form; programs keep their 401.
        let api: serde_json::Value = serde_json::from_str(
            &answer(http().get(format!("{url}/api/datasets/{CLINICS}")))
                .await
                .body,
        )
        .unwrap();
        let file_url = api["files"][0]["url"].as_str().unwrap().to_owned();
        let browser = get(&file_url, None).await;
        assert_eq!(browser.status, 303);
        assert_eq!(
            browser.headers["location"],
            format!("/datasets/{CLINICS}/apply")
        );
        let program = answer(http().get(&file_url).header("Accept", "application/json")).await;
        assert_eq!(program.status, 401);
        assert!(
            program.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(
            program.headers["www-authenticate"],
            "Bearer realm=\"govdc-portal\""
        );
        let problem: serde_json::Value = serde_json::from_str(&program.body).unwrap();
        assert_eq!(problem["apply"], format!("{url}/datasets/{CLINICS}/apply"));
        let curl = answer(http().get(&file_url)).await;
        assert_eq!(curl.status, 401);
        assert!(curl.body.contains("/apply"), "{}", curl.body);

        // A good application: stored, audited, and the browser sent to its status page.
        let submitted = post(&form_url, Some(&cookie), application(&csrf)).await;
        let status_url = format!("{url}{}", status_path(&submitted));
        let (number, secret) = {
            let mut parts = status_url.rsplit('/');
            let secret = parts.next().unwrap().to_owned();
            (parts.next().unwrap().to_owned(), secret)
        };
        assert_eq!(secret.len(), 64, "an unguessable link: 256 random bits");
        let pending = get(&status_url, Some(&cookie)).await;
        assert_eq!(pending.status, 200);
        assert!(pending.body.contains(&number));
        assert!(pending.body.contains("待审核"), "{}", pending.body);
        assert!(!pending.body.contains("<script>window.__x"));
        assert!(!pending.body.contains("/collect"), "nothing to collect yet");
        assert_eq!(pending.headers["cache-control"], "no-store");
        // Collecting before the decision gets nothing.
        let early = post(
            &format!("{status_url}/collect"),
            Some(&cookie),
            encode(&[("csrf", &csrf)]),
        )
        .await;
        assert_eq!(early.status, 200);
        assert!(!early.body.contains("gdt_"));

        let listed = portal
            .list_applications(ListApplicationsRequest {
                dataset_id: CLINICS.into(),
                state: ApplicationState::Pending as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .applications;
        assert_eq!(listed.len(), 1);
        let stored = &listed[0];
        assert_eq!(stored.id, number);
        assert_eq!(
            (
                stored.applicant.as_str(),
                stored.organisation.as_str(),
                stored.purpose.as_str(),
                stored.contact.as_str()
            ),
            (APPLICANT, ORGANISATION, PURPOSE, CONTACT)
        );
        let records = audit(&hub).await;
        let submit = records
            .iter()
            .find(|r| r.action == "portal.application.submit")
            .expect("the submission is audited");
        assert_eq!(submit.subject, CLINICS);
        let d = detail(submit);
        assert_eq!(d["application"], number);
        assert_eq!(d["applicant"], APPLICANT);
        let content = serde_json::json!([APPLICANT, ORGANISATION, PURPOSE, CONTACT]).to_string();
        assert_eq!(
            d["contentSha256"],
            sha256(content.as_bytes()),
            "the stored text is tamper-evident"
        );
        assert!(
            !submit.detail.contains(&secret),
            "the link's secret is in no record"
        );

        // The operator decides: a rejection needs a reason; an approval is final.
        let no_reason = portal
            .decide_application(DecideApplicationRequest {
                application_id: number.clone(),
                approve: false,
                reason: " ".into(),
                ttl_seconds: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(no_reason.code(), tonic::Code::InvalidArgument);
        let approved = portal
            .decide_application(DecideApplicationRequest {
                application_id: number.clone(),
                approve: true,
                reason: String::new(),
                ttl_seconds: 7 * 86_400,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(approved.state, ApplicationState::Approved as i32);
        assert_eq!(approved.decided_by, "operator");
        let twice = portal
            .decide_application(DecideApplicationRequest {
                application_id: number.clone(),
                approve: false,
                reason: "changed my mind".into(),
                ttl_seconds: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(twice.code(), tonic::Code::FailedPrecondition, "{twice:?}");
        let unknown = portal
            .decide_application(DecideApplicationRequest {
                application_id: "app-0000000000000000".into(),
                approve: true,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound);

        // The approval survives a restart; the status page offers the token.
        hub.stop().unwrap();
        hub.restart().unwrap();
        let ready = get(&status_url, Some(&cookie)).await;
        assert_eq!(ready.status, 200);
        assert!(ready.body.contains("已批准"), "{}", ready.body);
        assert!(ready.body.contains("/collect\""), "{}", ready.body);
        assert!(
            !ready.body.contains("gdt_"),
            "the token is not on the status page itself"
        );
        // Collecting is a form like the others: without its CSRF pair, nothing.
        let forged = post(
            &format!("{status_url}/collect"),
            None,
            encode(&[("csrf", &csrf)]),
        )
        .await;
        assert_eq!(forged.status, 403);

        let collected = post(
            &format!("{status_url}/collect"),
            Some(&cookie),
            encode(&[("csrf", &csrf)]),
        )
        .await;
        assert_eq!(collected.status, 200, "{}", collected.body);
        assert_eq!(collected.headers["cache-control"], "no-store");
        let marker = "id=\"token\" value=\"";
        let at = collected
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no token in {}", collected.body));
        let token = collected.body[at + marker.len()..]
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        assert!(token.starts_with("gdt_") && token.len() == 68, "{token}");
        // Exactly once: the next collect and the next visit say it was collected.
        let second = post(
            &format!("{status_url}/collect"),
            Some(&cookie),
            encode(&[("csrf", &csrf)]),
        )
        .await;
        assert_eq!(second.status, 200);
        assert!(!second.body.contains(&token) && !second.body.contains("gdt_"));
        assert!(second.body.contains("令牌已领取"), "{}", second.body);
        let visit = get(&format!("{status_url}?lang=en"), Some(&cookie)).await;
        assert!(!visit.body.contains("gdt_"));
        assert!(
            visit.body.contains("The download token was collected on"),
            "{}",
            visit.body
        );
        assert!(!visit.body.contains("/collect\""));

        // The token downloads the file; a made-up one does not.
        let download = http()
            .get(&file_url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(download.status(), 200);
        let bytes = download.bytes().await.unwrap();
        assert_eq!(bytes.as_ref(), gzip(clinics_csv).as_slice());
        let wrong = http()
            .get(&file_url)
            .bearer_auth("gdt_0000")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 403);

        // The audit log holds the decision and the token's issue (its digest, never the token).
        let records = audit(&hub).await;
        let approve = records
            .iter()
            .find(|r| r.action == "portal.application.approve")
            .unwrap();
        assert_eq!(
            (approve.actor.as_str(), approve.subject.as_str()),
            ("operator", CLINICS)
        );
        assert_eq!(detail(approve)["application"], number);
        let issue = records
            .iter()
            .rev()
            .find(|r| r.action == "portal.token.issue")
            .unwrap();
        assert_eq!(issue.actor, format!("application:{number}"));
        assert_eq!(detail(issue)["application"], number);
        assert_eq!(detail(issue)["tokenSha256"], sha256(token.as_bytes()));
        assert!(
            records
                .iter()
                .all(|r| !r.detail.contains(&token) && !r.detail.contains(&secret))
        );
        let verified = AuditClient::with_interceptor(
            channel(&hub),
            BearerToken::new(&hub.token("admin", "operator").unwrap()).unwrap(),
        )
        .verify_audit(VerifyAuditRequest::default())
        .await
        .unwrap()
        .into_inner();
        assert!(verified.intact, "{verified:?}");
        let listed = portal
            .list_applications(ListApplicationsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .applications;
        assert!(listed[0].collected_at.is_some());

        // Wrong links: another number, the right number with another secret, a malformed one.
        for wrong in [
            format!("{url}/applications/app-0000000000000000/{secret}"),
            format!("{url}/applications/{number}/{}", "f".repeat(64)),
            format!("{url}/applications/{number}/short"),
            format!("{url}/applications/..%2F..%2Fetc/{secret}"),
        ] {
            let page = get(&wrong, Some(&cookie)).await;
            assert_eq!(page.status, 404, "{wrong}");
            assert!(page.body.contains("找不到该申请"), "{}", page.body);
            let collect = post(
                &format!("{wrong}/collect"),
                Some(&cookie),
                encode(&[("csrf", &csrf)]),
            )
            .await;
            assert_eq!(collect.status, 404, "{wrong}");
        }

        // An approval whose time ran out before the applicant came back gives no token.
        let late = status_path(&post(&form_url, Some(&cookie), application(&csrf)).await);
        let late_number = late.split('/').nth(2).unwrap().to_owned();
        portal
            .decide_application(DecideApplicationRequest {
                application_id: late_number,
                approve: true,
                reason: String::new(),
                ttl_seconds: 1,
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let expired = get(&format!("{url}{late}?lang=en"), Some(&cookie)).await;
        assert!(expired.body.contains("Expired"), "{}", expired.body);
        assert!(!expired.body.contains("/collect\""));
        let none = post(
            &format!("{url}{late}/collect"),
            Some(&cookie),
            encode(&[("csrf", &csrf)]),
        )
        .await;
        assert!(!none.body.contains("gdt_"));

        // A rejection shows its reason, as text.
        let refused = status_path(&post(&form_url, Some(&cookie), application(&csrf)).await);
        portal
            .decide_application(DecideApplicationRequest {
                application_id: refused.split('/').nth(2).unwrap().to_owned(),
                approve: false,
                reason: "用途不明确 <b>请补充</b>".into(),
                ttl_seconds: 0,
            })
            .await
            .unwrap();
        let rejected = get(&format!("{url}{refused}"), Some(&cookie)).await;
        assert!(rejected.body.contains("未获批准"));
        assert!(
            rejected
                .body
                .contains("用途不明确 &#60;b&#62;请补充&#60;/b&#62;"),
            "{}",
            rejected.body
        );
        assert!(
            audit(&hub)
                .await
                .iter()
                .any(|r| r.action == "portal.application.reject")
        );
    })
    .await;
}
