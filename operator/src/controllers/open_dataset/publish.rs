//! The publish step: the operator uploads a dataset version to its portal node over gRPC, and
//! unpublishes it when the OpenDataset goes. The portal swaps versions only once every file of
//! the new one arrived whole, so the previous version stays served until then.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use govdc_hub_api::v1::portal_client::PortalClient;
use govdc_hub_api::v1::publish_dataset_request::Part;
use govdc_hub_api::v1::{
    DatasetMetadata, FileChunk, FileEnd, ListDatasetsRequest, PublishDatasetRequest,
    PublishedDataset, UnpublishDatasetRequest,
};

use crate::hub_client::{self, Authenticated, HubError, REDACTED, call};

/// How long one upload may take; large datasets stream for a while.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the other calls may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes per uploaded chunk: well under gRPC's default 4 MiB message limit.
const CHUNK_BYTES: usize = 256 * 1024;

/// The portal node the operator talks to.
#[derive(Clone)]
pub struct Portal {
    /// Its gRPC endpoint.
    pub endpoint: String,
    /// The operator's admin token for it.
    pub admin_token: String,
}

/// The admin token is a credential: debug output shows the endpoint only.
impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portal")
            .field("endpoint", &self.endpoint)
            .field("admin_token", &REDACTED)
            .finish()
    }
}

/// A file of a version, ready to upload.
#[derive(Clone, Debug)]
pub struct UploadFile {
    /// `csv` or `json`.
    pub format: String,
    /// Where the gzip-compressed file is.
    pub path: PathBuf,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Portal {
    async fn client(&self, timeout: Duration) -> Result<PortalClient<Authenticated>, HubError> {
        let channel = hub_client::channel(&self.endpoint, timeout, &self.admin_token).await?;
        Ok(PortalClient::new(channel))
    }

    /// The version the portal serves of dataset `id`, if any.
    pub async fn current(&self, id: &str) -> Result<Option<PublishedDataset>, HubError> {
        let mut client = self.client(CALL_TIMEOUT).await?;
        let listed = call(
            "Portal.ListDatasets",
            client.list_datasets(ListDatasetsRequest {}),
        )
        .await?;
        Ok(listed
            .datasets
            .into_iter()
            .find(|d| d.metadata.as_ref().is_some_and(|m| m.id == id)))
    }

    /// Uploads a version: its metadata, then each file in chunks with its checksum.
    pub async fn publish(
        &self,
        metadata: DatasetMetadata,
        files: Vec<UploadFile>,
    ) -> Result<PublishedDataset, HubError> {
        let (sender, receiver) = tokio::sync::mpsc::channel::<PublishDatasetRequest>(4);
        // Files are read on a blocking thread, a chunk at a time, so memory stays flat however
        // large the dataset.
        let reader = tokio::task::spawn_blocking(move || read_parts(metadata, &files, &sender));
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|part| (part, receiver))
        });
        let mut client = self.client(UPLOAD_TIMEOUT).await?;
        // The portal's answer counts only once the reader sent every file whole.
        let upload = async {
            let answer = client.publish_dataset(stream).await;
            let read = reader.await;
            let published = answer?;
            match read {
                Ok(Ok(())) => Ok(published),
                Ok(Err(error)) => Err(tonic::Status::internal(format!(
                    "reading the files to upload: {error}"
                ))),
                Err(error) => Err(tonic::Status::internal(format!(
                    "the upload reader failed: {error}"
                ))),
            }
        };
        call("Portal.PublishDataset", upload).await
    }

    /// Stops serving dataset `id`; whether it was served.
    pub async fn unpublish(&self, id: &str) -> Result<bool, HubError> {
        let mut client = self.client(CALL_TIMEOUT).await?;
        let request = UnpublishDatasetRequest { id: id.to_owned() };
        let answer = call("Portal.UnpublishDataset", client.unpublish_dataset(request)).await?;
        Ok(answer.removed)
    }
}

/// Sends the metadata, then every file's chunks and end. Stops early, without error, when the
/// upload was abandoned (the receiver is gone); the call's own error says why.
fn read_parts(
    metadata: DatasetMetadata,
    files: &[UploadFile],
    sender: &tokio::sync::mpsc::Sender<PublishDatasetRequest>,
) -> std::io::Result<()> {
    let send = |part: Part| {
        sender
            .blocking_send(PublishDatasetRequest { part: Some(part) })
            .is_ok()
    };
    if !send(Part::Metadata(metadata)) {
        return Ok(());
    }
    for file in files {
        let mut reader = std::fs::File::open(&file.path)?;
        let mut buffer = vec![0u8; CHUNK_BYTES];
        loop {
            let read = reader.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            if !send(Part::Chunk(FileChunk {
                format: file.format.clone(),
                data: buffer[..read].to_vec(),
            })) {
                return Ok(());
            }
        }
        if !send(Part::End(FileEnd {
            format: file.format.clone(),
            sha256: file.sha256.clone(),
            size: i64::try_from(file.size).unwrap_or(i64::MAX),
        })) {
            return Ok(());
        }
    }
    Ok(())
}
