//! The source step: the dataset's records as CSV. A ConfigMap or Secret already holds CSV text
//! (at most 1 MiB); a catalog resource is read from its exchange node as the owning department
//! and spooled to a file, a batch at a time.

use std::io::BufWriter;
use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt;
use govdc_crds::DepartmentCloud;
use govdc_hub_api::auth::{Claims, Role};
use govdc_hub_api::v1::catalog_client::CatalogClient;
use govdc_hub_api::v1::exchange_client::ExchangeClient;
use govdc_hub_api::v1::{
    FetchRequest, GetResourceRequest, OpenType, Openness, RequestAccessRequest,
};
use kube::ResourceExt;

use super::build::SourceData;
use super::read::Source;
use crate::controllers::exchange_node::HubSettings;
use crate::hub_client::{self, HubError, call, key};

/// How long reading a resource may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);
/// Records per fetched message.
const FETCH_BATCH: i32 = 1000;
/// How long the department's token for one read lives.
const TOKEN_TTL: Duration = Duration::from_secs(900);

/// Why the source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The exchange node has no signing key yet (it is still being deployed).
    #[error("the exchange node {0} has no signing key yet")]
    NodeNotReady(String),
    /// The node refused or failed.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The records could not be spooled.
    #[error("spooling the records: {0}")]
    Io(#[from] std::io::Error),
    /// The resource is another department's and its provider has not opened it (to this
    /// openness). The hub refuses the read as well; this says so before asking.
    #[error(
        "{code} is provided by {provider} and its open type is {open_type}: only its provider may \
         publish it{as_what} (shared among departments is not open to the public)"
    )]
    NotOpenable {
        /// The resource.
        code: String,
        /// Its provider.
        provider: String,
        /// Its open type, as the catalog names it.
        open_type: &'static str,
        /// ` as an unconditional dataset` when a conditional one would be allowed.
        as_what: &'static str,
    },
}

/// Whether a department that does not provide a resource of `open_type` may publish it with
/// `openness`: 无条件开放 for any openness, 有条件开放 for conditional datasets only.
fn openable(open_type: OpenType, openness: Openness) -> bool {
    matches!(
        (open_type, openness),
        (OpenType::Unconditional, _) | (OpenType::Conditional, Openness::Conditional)
    )
}

/// Where and as whom a catalog resource is read.
struct ExchangeAccess {
    endpoint: String,
    token: String,
}

fn access(
    node: &govdc_crds::ExchangeNode,
    key_secret: Option<&k8s_openapi::api::core::v1::Secret>,
    owner: &DepartmentCloud,
    settings: &HubSettings,
) -> Result<ExchangeAccess, SourceError> {
    let name = node.name_any();
    let signing_key = key_secret
        .map(|s| key::from_secret(s, &name))
        .transpose()
        .map_err(|_| SourceError::NodeNotReady(name.clone()))?
        .flatten()
        .ok_or_else(|| SourceError::NodeNotReady(name.clone()))?;
    let claims = Claims::new(
        &owner.spec.department.credit_code,
        Role::Member,
        &name,
        TOKEN_TTL,
    );
    let token = signing_key
        .issue(&claims)
        .map_err(|_| SourceError::NodeNotReady(name.clone()))?;
    Ok(ExchangeAccess {
        endpoint: settings.endpoint(&node.namespace().unwrap_or_default(), &name),
        token,
    })
}

/// A cheap fingerprint of the source, to tell whether it changed without reading it all: the
/// CSV text's digest, or a catalog resource's record count and last update.
pub async fn fingerprint(
    source: &Source,
    owner: &DepartmentCloud,
    settings: &HubSettings,
) -> Result<String, SourceError> {
    match source {
        Source::Inline(bytes) => Ok(crate::digest::sha256_hex(bytes)),
        Source::Exchange {
            node,
            key_secret,
            code,
        } => {
            let access = access(node, key_secret.as_deref(), owner, settings)?;
            let channel =
                hub_client::channel(&access.endpoint, Duration::from_secs(10), &access.token)
                    .await?;
            let request = GetResourceRequest { code: code.clone() };
            let resource = call(
                "Catalog.GetResource",
                CatalogClient::new(channel).get_resource(request),
            )
            .await?;
            let updated = resource
                .updated_at
                .map(|t| format!("{}.{}", t.seconds, t.nanos))
                .unwrap_or_default();
            Ok(format!("{code}:{}:{updated}", resource.record_count))
        }
        Source::Missing(message) => Ok(message.clone()),
    }
}

/// The source's CSV text with `columns` (the declared fields), in memory or spooled into `dir`,
/// read to be published with `openness`.
pub async fn materialize(
    source: &Source,
    owner: &DepartmentCloud,
    settings: &HubSettings,
    columns: &[String],
    dir: &Path,
    openness: govdc_crds::open_dataset::Openness,
) -> Result<SourceData, SourceError> {
    let openness = match openness {
        govdc_crds::open_dataset::Openness::Unconditional => Openness::Unconditional,
        govdc_crds::open_dataset::Openness::Conditional => Openness::Conditional,
    };
    let (node, key_secret, code) = match source {
        Source::Inline(bytes) => return Ok(SourceData::Memory(bytes.clone())),
        Source::Missing(_) => return Ok(SourceData::Memory(Vec::new())),
        Source::Exchange {
            node,
            key_secret,
            code,
        } => (node, key_secret, code),
    };
    let access = access(node, key_secret.as_deref(), owner, settings)?;
    let channel = hub_client::channel(&access.endpoint, FETCH_TIMEOUT, &access.token).await?;
    let request = GetResourceRequest { code: code.clone() };
    let resource = call(
        "Catalog.GetResource",
        CatalogClient::new(channel.clone()).get_resource(request),
    )
    .await?;
    let mut exchange = ExchangeClient::new(channel);
    let open_type = OpenType::try_from(resource.open_type).unwrap_or(OpenType::Unspecified);
    if resource.provider != owner.spec.department.credit_code && !openable(open_type, openness) {
        return Err(SourceError::NotOpenable {
            code: code.clone(),
            provider: resource.provider,
            open_type: match open_type {
                OpenType::Unconditional => "unconditionally open (无条件开放)",
                OpenType::Conditional => "open on conditions (有条件开放)",
                OpenType::NotOpen | OpenType::Unspecified => "not open (不予开放)",
            },
            as_what: if open_type == OpenType::Conditional {
                " as an unconditional dataset"
            } else {
                ""
            },
        });
    }
    if resource.provider != owner.spec.department.credit_code {
        // Publishing another department's data is a use like any other: the owner asks for
        // access, which an unconditional resource grants at once and a conditional one only once
        // its provider agreed. A provider reads its own resource without a grant.
        let request = RequestAccessRequest {
            resource_code: code.clone(),
            purpose: "publication on the open-data portal, de-identified".to_owned(),
        };
        call("Exchange.RequestAccess", exchange.request_access(request)).await?;
    }
    let request = FetchRequest {
        resource_code: code.clone(),
        max_records: 0,
        batch_size: FETCH_BATCH,
        follow: false,
        from_start: true,
        // Declared, so that the hub refuses it unless the resource is openable.
        publication: openness as i32,
    };
    let mut stream = hub_client::streaming("Exchange.Fetch", exchange.fetch(request)).await?;
    let path = dir.join("source.csv");
    let mut spool = Spool::create(&path, columns)?;
    while let Some(message) = stream.try_next().await? {
        for record in message.records {
            spool.write(&record.data)?;
        }
    }
    spool.finish()?;
    Ok(SourceData::File(path))
}

/// Records (JSON objects, as the exchange carries them) written as CSV rows under a header of
/// the declared fields. Values that are not strings are written as their JSON text; missing
/// ones as empty.
pub struct Spool {
    writer: csv::Writer<BufWriter<std::fs::File>>,
    columns: Vec<String>,
    count: u64,
}

impl Spool {
    /// A spool writing to `path`, its header written.
    pub fn create(path: &Path, columns: &[String]) -> std::io::Result<Spool> {
        let mut writer = csv::Writer::from_writer(BufWriter::new(std::fs::File::create(path)?));
        writer.write_record(columns)?;
        Ok(Spool {
            writer,
            columns: columns.to_vec(),
            count: 0,
        })
    }

    /// Appends one record.
    pub fn write(&mut self, record: &[u8]) -> std::io::Result<()> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(record)
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("record {} is not a JSON object: {e}", self.count + 1),
                )
            })?;
        let row = self.columns.iter().map(|c| match object.get(c) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        });
        self.writer.write_record(row)?;
        self.count += 1;
        Ok(())
    }

    /// Flushes the file; returns the records written.
    pub fn finish(mut self) -> std::io::Result<u64> {
        self.writer.flush()?;
        Ok(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_open_type_that_allows_the_openness_is_openable() {
        assert!(openable(OpenType::Unconditional, Openness::Unconditional));
        assert!(openable(OpenType::Unconditional, Openness::Conditional));
        assert!(openable(OpenType::Conditional, Openness::Conditional));
        assert!(!openable(OpenType::Conditional, Openness::Unconditional));
        assert!(!openable(OpenType::NotOpen, Openness::Conditional));
        assert!(!openable(OpenType::Unspecified, Openness::Unconditional));
    }

    #[test]
    fn records_become_csv_rows_under_the_declared_header() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.csv");
        let columns = vec!["name".to_owned(), "age".to_owned(), "city".to_owned()];
        let mut spool = Spool::create(&path, &columns).expect("create");
        spool
            .write(br#"{"name":"Li, Wei","age":34,"extra":"x"}"#)
            .expect("write");
        spool
            .write(br#"{"name":"Wang","city":null}"#)
            .expect("write");
        assert!(spool.write(b"[1,2]").is_err(), "not an object");
        assert_eq!(spool.finish().expect("finish"), 2);
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "name,age,city\n\"Li, Wei\",34,\nWang,,\n");
    }
}
