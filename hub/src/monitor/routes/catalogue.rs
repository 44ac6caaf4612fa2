//! The shared-resource catalogue, searched by the portal's search.

use super::*;

/// A share type as the catalogue's facet value.
fn share_slug(share: i32) -> &'static str {
    match ShareType::try_from(share) {
        Ok(ShareType::Unconditional) => "unconditional",
        Ok(ShareType::Conditional) => "conditional",
        _ => "not-shared",
    }
}

/// An open type as the catalogue's facet value (unset is not open).
fn open_slug(open: i32) -> &'static str {
    match OpenType::try_from(open) {
        Ok(OpenType::Unconditional) => "unconditional",
        Ok(OpenType::Conditional) => "conditional",
        _ => "not-open",
    }
}

/// A catalogue resource as an entry of the portal's search, so that the catalogue is searched
/// by the same words and facets as the portal's datasets: code as id, name as title, field
/// names as tags, provider as department; the share type in the category's place and the open
/// type in the licence's (resources have neither category nor licence).
fn as_entry(resource: &Resource) -> Entry {
    Entry {
        metadata: govdc_hub_api::v1::DatasetMetadata {
            id: resource.code.clone(),
            title: resource.name.clone(),
            description: resource.description.clone(),
            tags: resource.fields.iter().map(|f| f.name.clone()).collect(),
            organization_credit_code: resource.provider.clone(),
            category: share_slug(resource.share_type).to_owned(),
            license: open_slug(resource.open_type).to_owned(),
            ..Default::default()
        },
        files: Vec::<StoredFile>::new(),
        published_at: figures::micros(resource.updated_at.as_ref()),
    }
}

/// The catalogue's facets: parameter, the search's facet, title key, the values it may take.
const CATALOGUE_FACETS: &[(&str, Facet, &str, Option<&[&str]>)] = &[
    ("department", Facet::Department, "facet.department", None),
    (
        "share",
        Facet::Category,
        "facet.share",
        Some(&["unconditional", "conditional", "not-shared"]),
    ),
    (
        "open",
        Facet::License,
        "facet.open",
        Some(&["unconditional", "conditional", "not-open"]),
    ),
];

fn facet_label(lang: Lang, param: &str, value: &str, names: &BTreeMap<String, String>) -> String {
    match param {
        "share" => t(lang, &format!("share.{value}")).to_owned(),
        "open" => t(lang, &format!("open.{value}")).to_owned(),
        _ => names
            .iter()
            .find(|(code, _)| code.eq_ignore_ascii_case(value))
            .map_or_else(
                || value.to_uppercase(),
                |(code, name)| format!("{name} ({code})"),
            ),
    }
}

fn catalogue_url(
    frame: &Frame,
    text: &str,
    filters: &BTreeMap<&'static str, String>,
    page: usize,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if !text.is_empty() {
        query.append_pair("q", text);
    }
    for (name, value) in filters {
        query.append_pair(name, value);
    }
    if page > 1 {
        query.append_pair("page", &page.to_string());
    }
    if let Some(lang) = frame.explicit {
        query.append_pair("lang", lang.tag());
    }
    let query = query.finish();
    if query.is_empty() {
        "/catalogue".to_owned()
    } else {
        format!("/catalogue?{query}")
    }
}

/// `GET /catalogue?q=&department=&share=&open=&page=`.
pub async fn catalogue(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (frame, params) = frame_or_400!(
        &state,
        &headers,
        "/catalogue",
        raw.as_deref(),
        &["lang", "q", "department", "share", "open", "page"]
    );
    let lang = frame.lang;
    let text = params.get("q").cloned().unwrap_or_default();
    let mut filters: BTreeMap<&'static str, String> = BTreeMap::new();
    for (param, _, _, allowed) in CATALOGUE_FACETS {
        if let Some(value) = params.get(*param) {
            if let Some(allowed) = allowed
                && !allowed.contains(&value.as_str())
            {
                return frame.bad_request(&BadParameter::Invalid {
                    name: (*param).to_owned(),
                    value: value.clone(),
                    allowed: allowed.join(", "),
                });
            }
            filters.insert(param, value.clone());
        }
    }
    let page = match params.get("page").map(|p| p.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if (1..=query::MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return frame.bad_request(&BadParameter::Invalid {
                name: "page".to_owned(),
                value: params.get("page").cloned().unwrap_or_default(),
                allowed: format!("1 … {}", query::MAX_PAGE),
            });
        }
    };
    let read = state
        .hub
        .store
        .read(|conn| {
            Ok((
                crate::service::catalog_for_parent(conn)?,
                member_names(conn)?,
            ))
        })
        .await;
    let (resources, names) = match read {
        Ok(read) => read,
        Err(e) => return frame.unavailable(e.message()),
    };
    let entries: Vec<Entry> = resources.iter().map(as_entry).collect();
    let search_query = search::Query {
        text: text.clone(),
        filters: CATALOGUE_FACETS
            .iter()
            .filter_map(|(param, facet, _, _)| filters.get(param).map(|v| (*facet, v.clone())))
            .collect(),
        sort: if text.is_empty() {
            search::Sort::Newest
        } else {
            search::Sort::Relevance
        },
    };
    let hits = search::search(&entries, &search_query);
    let facets = CATALOGUE_FACETS
        .iter()
        .map(|(param, facet, title, _)| FacetView {
            title: t(lang, title),
            options: search::counts(&hits, *facet)
                .into_iter()
                .map(|(value, count)| {
                    let mut with = filters.clone();
                    with.insert(param, value.clone());
                    FacetOption {
                        label: facet_label(lang, param, &value, &names),
                        count,
                        url: catalogue_url(&frame, &text, &with, 1),
                        selected: filters
                            .get(param)
                            .is_some_and(|v| v.eq_ignore_ascii_case(&value)),
                    }
                })
                .collect(),
        })
        .collect();
    let active = filters
        .iter()
        .map(|(param, value)| {
            let mut without = filters.clone();
            without.remove(param);
            (
                facet_label(lang, param, value, &names),
                catalogue_url(&frame, &text, &without, 1),
            )
        })
        .collect();
    let pages = hits.len().div_ceil(CATALOGUE_PAGE).max(1);
    // Codes are unique in the hub tree (the first row of one wins, as in the catalogue's order).
    let mut by_code: BTreeMap<&str, &Resource> = BTreeMap::new();
    for r in &resources {
        by_code.entry(r.code.as_str()).or_insert(r);
    }
    let results = hits
        .iter()
        .skip((page - 1) * CATALOGUE_PAGE)
        .take(CATALOGUE_PAGE)
        .filter_map(|entry| {
            let r = *by_code.get(entry.metadata.id.as_str())?;
            let (updated, updated_iso) = when(figures::micros(r.updated_at.as_ref()));
            let not_shared = share_slug(r.share_type) == "not-shared";
            Some(ResourceView {
                code: r.code.clone(),
                name: r.name.clone(),
                description: summary(&r.description, 240),
                provider: facet_label(lang, "department", &r.provider, &names),
                node: r.node.clone(),
                share: t(lang, &format!("share.{}", share_slug(r.share_type))),
                share_class: match share_slug(r.share_type) {
                    "unconditional" => "badge-open",
                    "conditional" => "badge-conditional",
                    _ => "badge-alert",
                },
                open: t(lang, &format!("open.{}", open_slug(r.open_type))),
                reason: not_shared.then(|| {
                    if r.not_shared_reason.trim().is_empty() {
                        t(lang, "catalogue.no_reason").to_owned()
                    } else {
                        r.not_shared_reason.clone()
                    }
                }),
                updated,
                updated_iso,
            })
        })
        .collect();
    let page = CataloguePage {
        layout: frame.layout(t(lang, "catalogue.title").to_owned(), "catalogue"),
        hidden: filters.iter().map(|(k, v)| (*k, v.clone())).collect(),
        active,
        clear_url: catalogue_url(&frame, &text, &BTreeMap::new(), 1),
        facets,
        count_label: fill(lang, "catalogue.count", &[("n", &hits.len().to_string())]),
        results,
        page_label: (pages > 1).then(|| {
            fill(
                lang,
                "page.of",
                &[("page", &page.to_string()), ("pages", &pages.to_string())],
            )
        }),
        prev_url: (page > 1).then(|| catalogue_url(&frame, &text, &filters, page - 1)),
        next_url: (page < pages).then(|| catalogue_url(&frame, &text, &filters, page + 1)),
        text,
    };
    html(StatusCode::OK, lang, page.render())
}
