//! Pure validation of an OpenDataset's inputs: the refusals that keep anything from being
//! published. The field rules themselves are checked by [`crate::deid::Plan`].

use govdc_crds::open_dataset::SourceEncoding;
use govdc_crds::{NetworkZone, OpenDataset};

use super::read::{Inputs, Source};
use crate::pipeline::report::Problem;

/// The problems found; empty when the dataset may be published.
pub fn validate(dataset: &OpenDataset, inputs: &Inputs) -> Vec<Problem> {
    let mut problems = Vec::new();
    match &inputs.owner {
        None => problems.push(Problem::new(
            "OwnerNotFound",
            "metadata.namespace: the namespace belongs to no DepartmentCloud; datasets are published from a department's namespace",
        )),
        Some(owner) if owner.spec.network_zone == NetworkZone::Intranet => problems.push(Problem::new(
            "OwnerOnIntranet",
            format!("the owning department {} is on the classified intranet; its data is never opened to the public", owner.spec.department.name),
        )),
        Some(_) => {}
    }
    match &inputs.portal {
        None => problems.push(Problem::new(
            "PortalNotFound",
            format!(
                "spec.portal: ExchangeNode {} does not exist",
                dataset.spec.portal.name
            ),
        )),
        Some(portal) if !portal.spec.open_data_portal => problems.push(Problem::new(
            "PortalNotServing",
            format!(
                "spec.portal: ExchangeNode {} does not serve the open-data portal",
                dataset.spec.portal.name
            ),
        )),
        Some(_) => {}
    }
    if let Source::Missing(message) = &inputs.source {
        problems.push(Problem::new("SourceNotFound", message.clone()));
    }
    // Admission refuses it too; checked again because an exchange resource's records arrive as
    // UTF-8 JSON, which a GB 18030 decoder would garble.
    if dataset.spec.source.exchange_resource.is_some()
        && dataset.spec.source.encoding == Some(SourceEncoding::Gb18030)
    {
        problems.push(Problem::new(
            "SourceEncodingInvalid",
            "spec.source.encoding: an exchange resource's records are always UTF-8; encoding applies to a ConfigMap's or Secret's CSV",
        ));
    }
    if let Some(reference) = &dataset.spec.pseudonym_key_ref
        && inputs.pseudonym_key.is_none()
    {
        problems.push(Problem::new(
            "PseudonymKeyMissing",
            format!(
                "spec.pseudonymKeyRef: Secret {} with key {} does not exist",
                reference.name, reference.key
            ),
        ));
    }
    problems
}
