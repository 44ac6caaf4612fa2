//! The DCAT-AP catalog in JSON-LD (`/catalog.jsonld`), for harvesters such as data.europa.eu's
//! piveau or ckanext-dcat: a `dcat:Catalog` whose `dcat:dataset`s carry title, description,
//! publisher, keywords, theme, licence, and one `dcat:Distribution` per file with its
//! `dcat:accessURL`/`dcat:downloadURL`, media type, compression, size and `spdx:checksum`.
//!
//! Every IRI-valued property is an `{"@id": ...}` node and every typed literal carries its
//! `@type`, so the document means the same to any JSON-LD processor without fetching a remote
//! context (the context is inline).

use serde_json::{Value, json};

use super::Entry;
use super::http::rfc3339;

fn media_type(format: &str) -> &'static str {
    match format {
        "csv" => "http://www.iana.org/assignments/media-types/text/csv",
        _ => "http://www.iana.org/assignments/media-types/application/json",
    }
}

fn dataset(entry: &Entry, base: &str) -> Value {
    let m = &entry.metadata;
    let iri = format!("{base}/api/datasets/{}", m.id);
    let modified = json!({ "@value": rfc3339(entry.published_at), "@type": "xsd:dateTime" });
    let distributions: Vec<Value> = entry
        .to_api()
        .files
        .iter()
        .map(|f| {
            let url = format!("{base}{}", f.path);
            json!({
                "@id": format!("{iri}/distributions/{}", f.format),
                "@type": "dcat:Distribution",
                "dct:title": format!("{} ({})", m.title, f.format.to_uppercase()),
                "dct:format": f.format.to_uppercase(),
                "dcat:accessURL": { "@id": url },
                "dcat:downloadURL": { "@id": url },
                "dcat:mediaType": { "@id": media_type(&f.format) },
                "dcat:compressFormat": { "@id": "http://www.iana.org/assignments/media-types/application/gzip" },
                "dcat:byteSize": { "@value": f.size.to_string(), "@type": "xsd:nonNegativeInteger" },
                "dct:modified": modified,
                "dct:license": license(&m.license),
                "spdx:checksum": {
                    "@type": "spdx:Checksum",
                    "spdx:algorithm": { "@id": "spdx:checksumAlgorithm_sha256" },
                    "spdx:checksumValue": { "@value": f.sha256, "@type": "xsd:hexBinary" },
                },
            })
        })
        .collect();
    json!({
        "@id": iri,
        "@type": "dcat:Dataset",
        "dct:identifier": m.id,
        "dct:title": m.title,
        "dct:description": m.description,
        "dct:publisher": {
            "@id": format!("{base}/organizations/{}", m.organization_credit_code.to_lowercase()),
            "@type": "foaf:Organization",
            "foaf:name": m.organization_name,
            "dct:identifier": m.organization_credit_code,
        },
        "dcat:keyword": m.tags,
        "dcat:theme": { "@id": format!("{base}/categories/{}", m.category) },
        "dct:license": license(&m.license),
        "dct:accessRights": {
            "@id": if entry.conditional() {
                "http://publications.europa.eu/resource/authority/access-right/RESTRICTED"
            } else {
                "http://publications.europa.eu/resource/authority/access-right/PUBLIC"
            }
        },
        "dcat:version": m.version.to_string(),
        "dct:modified": modified,
        "dcat:distribution": distributions,
    })
}

fn license(id: &str) -> Value {
    json!({ "@id": format!("http://spdx.org/licenses/{id}") })
}

fn context() -> Value {
    json!({
        "dcat": "http://www.w3.org/ns/dcat#",
        "dct": "http://purl.org/dc/terms/",
        "foaf": "http://xmlns.com/foaf/0.1/",
        "spdx": "http://spdx.org/rdf/terms#",
        "xsd": "http://www.w3.org/2001/XMLSchema#",
    })
}

/// One dataset's DCAT-AP description on its own (what its web page links as its DCAT): the
/// same node as in the catalog, with the context inline.
pub fn dataset_document(base: &str, entry: &Entry) -> Value {
    let mut node = dataset(entry, base);
    node["@context"] = context();
    node
}

/// The catalog of `entries` on node `node`, absolute URLs under `base`.
pub fn catalog(node: &str, base: &str, entries: &[Entry]) -> Value {
    json!({
        "@context": context(),
        "@id": format!("{base}/catalog.jsonld"),
        "@type": "dcat:Catalog",
        "dct:title": format!("Open data of hub node {node} (国家公共数据开放网站)"),
        "dct:description": "De-identified public datasets, graded and classified, as machine-readable bulk downloads.",
        "dct:publisher": {
            "@id": base,
            "@type": "foaf:Organization",
            "foaf:name": format!("govdc hub node {node}"),
        },
        "foaf:homepage": { "@id": base },
        "dcat:dataset": entries.iter().map(|e| dataset(e, base)).collect::<Vec<_>>(),
    })
}
