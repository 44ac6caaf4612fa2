//! A department's sign-in, sign-out and its own requests and grants.

use super::health::{grant_rows, grant_view};
use super::*;

/// The sign-in form with a fresh CSRF token (also set as its cookie).
fn signin_page(frame: &Frame, status: StatusCode, problem: Option<String>) -> Response {
    let csrf = match session::random_token() {
        Ok(csrf) => csrf,
        Err(e) => return frame.unavailable(&e.to_string()),
    };
    let page = SigninPage {
        layout: frame.layout(t(frame.lang, "signin.title").to_owned(), "signin"),
        action: frame.link("/signin"),
        csrf: csrf.clone(),
        problem,
    };
    let mut response = html(status, frame.lang, page.render());
    if let Ok(value) =
        HeaderValue::from_str(&session::set_cookie(CSRF_COOKIE, &csrf, "/signin", 3600))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /signin`.
pub async fn signin_form(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (frame, _) = frame_or_400!(&state, &headers, "/signin", raw.as_deref(), &["lang"]);
    signin_page(&frame, StatusCode::OK, None)
}

/// The fields of a posted form, each at most once and each one of `allowed`.
fn form(body: &Bytes, allowed: &[&str]) -> Result<BTreeMap<String, String>, BadParameter> {
    if body.len() > MAX_FORM {
        return Err(BadParameter::TooLong {
            name: "form".to_owned(),
            max: MAX_FORM,
        });
    }
    let mut out = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if !allowed.contains(&name.as_ref()) {
            return Err(BadParameter::Unknown {
                name: name.into_owned(),
            });
        }
        if out
            .insert(name.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(BadParameter::Repeated {
                name: name.into_owned(),
            });
        }
    }
    Ok(out)
}

/// `POST /signin`: `csrf` must equal the form's cookie; `token` must be a member token of this
/// node. Then a session cookie, and on to `/mine`.
pub async fn signin(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let (frame, _) = frame_or_400!(&state, &headers, "/signin", raw.as_deref(), &["lang"]);
    let fields = match form(&body, &["csrf", "token"]) {
        Ok(fields) => fields,
        Err(bad) => return frame.bad_request(&bad),
    };
    let expected = session::cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    let given = fields.get("csrf").map(String::as_str).unwrap_or_default();
    if !session::same(&expected, given) {
        return frame.error(
            StatusCode::FORBIDDEN,
            "csrf.title",
            t(frame.lang, "csrf.body").to_owned(),
            None,
        );
    }
    let token = fields.get("token").map(String::as_str).unwrap_or_default();
    let (department, expires) = match state.hub.auth.member_of_token(token) {
        Ok(found) => found,
        Err(why) => {
            tracing::info!(reason = %why, "a monitor sign-in was refused");
            return signin_page(
                &frame,
                StatusCode::UNAUTHORIZED,
                Some(t(frame.lang, "signin.refused").to_owned()),
            );
        }
    };
    // Who looked at the node's sharing records is itself a record (行为留痕).
    let algorithm = state.hub.algorithm();
    let actor = department.clone();
    let recorded = state
        .hub
        .store
        .write(move |conn| {
            crate::service::record(
                conn,
                algorithm,
                &actor,
                "monitor.signin",
                &actor,
                serde_json::json!({}),
            )
            .map(|_| ())
        })
        .await;
    if let Err(e) = recorded {
        return frame.unavailable(e.message());
    }
    let (id, session) = match state.sessions.start(&department, expires) {
        Ok(started) => started,
        Err(e) => return frame.unavailable(&e.to_string()),
    };
    tracing::info!(department = %department, "a department signed in to the monitor");
    let max_age = session
        .expires_at
        .saturating_sub(jiff::Timestamp::now().as_second().max(0) as u64);
    let mut response = session::see_other(&frame.link("/mine"));
    for cookie in [
        session::set_cookie(SESSION_COOKIE, &id, "/", max_age),
        session::set_cookie(CSRF_COOKIE, "", "/signin", 0),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// `POST /signout`: `csrf` must be the session's.
pub async fn signout(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let (frame, _) = frame_or_400!(&state, &headers, "/signout", raw.as_deref(), &["lang"]);
    let fields = match form(&body, &["csrf"]) {
        Ok(fields) => fields,
        Err(bad) => return frame.bad_request(&bad),
    };
    let Some((id, session)) = &frame.session else {
        return session::see_other(&frame.link("/signin"));
    };
    if !session::same(
        &session.csrf,
        fields.get("csrf").map(String::as_str).unwrap_or_default(),
    ) {
        return frame.error(
            StatusCode::FORBIDDEN,
            "csrf.title",
            t(frame.lang, "csrf.body").to_owned(),
            None,
        );
    }
    state.sessions.end(id);
    let mut response = session::see_other(&frame.link("/"));
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(SESSION_COOKIE, "", "/", 0)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /mine`: the signed-in department's requests (as consumer) and the requests made to it
/// (as provider).
pub async fn mine(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (frame, _) = frame_or_400!(&state, &headers, "/mine", raw.as_deref(), &["lang"]);
    let lang = frame.lang;
    let Some((_, session)) = frame.session.clone() else {
        return session::see_other(&frame.link("/signin"));
    };
    let department = session.department.clone();
    let read = state
        .hub
        .store
        .read(move |conn| Ok((grant_rows(conn, Some(&department))?, member_names(conn)?)))
        .await;
    let (rows, names) = match read {
        Ok(read) => read,
        Err(e) => return frame.unavailable(e.message()),
    };
    let now = now_micros();
    let code = session.department.as_str();
    let requests = rows
        .iter()
        .filter(|(g, _, _)| g.consumer == code)
        .map(|(g, purpose, reason)| {
            grant_view(lang, g, purpose.clone(), reason.clone(), &g.provider, now)
        })
        .collect();
    let grants = rows
        .iter()
        .filter(|(g, _, _)| g.provider == code)
        .map(|(g, purpose, reason)| {
            grant_view(lang, g, purpose.clone(), reason.clone(), &g.consumer, now)
        })
        .collect();
    let name = names.get(code).cloned().unwrap_or_default();
    let page = MinePage {
        layout: frame.layout(t(lang, "mine.title").to_owned(), "mine"),
        heading: fill(lang, "mine.heading", &[("name", &name), ("code", code)]),
        signout_action: frame.link("/signout"),
        csrf: session.csrf.clone(),
        requests,
        grants,
    };
    let mut response = html(StatusCode::OK, lang, page.render());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
