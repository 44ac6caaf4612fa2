//! OpenDataset: a de-identified dataset published on the national public open-data portal
//! (国家公共数据开放网站).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{CRON_PATTERN, ObjectReference, SecretKeyReference};

/// A dataset a department opens to the public through a portal node, de-identified field by
/// field. It lives in one of the department's namespaces; that namespace's DepartmentCloud owns it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "govdc.io",
    version = "v1alpha1",
    kind = "OpenDataset",
    plural = "opendatasets",
    shortname = "od",
    category = "govdc",
    namespaced,
    status = "OpenDatasetStatus",
    doc = "A de-identified dataset published on the public open-data portal.",
    printcolumn(name = "Title", type_ = "string", json_path = ".spec.title"),
    printcolumn(name = "Category", type_ = "string", json_path = ".spec.category"),
    printcolumn(name = "Openness", type_ = "string", json_path = ".spec.openness"),
    printcolumn(
        name = "Version",
        type_ = "integer",
        json_path = ".status.publishedVersion"
    ),
    printcolumn(name = "Records", type_ = "integer", json_path = ".status.recordCount"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.quasiIdentifiers.all(q, self.fields.exists(f, f.name == q))")
        .message("every quasi-identifier must name a declared field")
        .field_path(".quasiIdentifiers"),
    validation = Rule::new("!self.fields.exists(f, f.action == 'pseudonymize') || has(self.pseudonymKeyRef)")
        .message("pseudonymKeyRef is required when a field is pseudonymized")
        .field_path(".pseudonymKeyRef"),
    validation = Rule::new("!has(self.kAnonymity) || size(self.quasiIdentifiers) > 0")
        .message("kAnonymity needs at least one quasi-identifier")
        .field_path(".kAnonymity"),
    validation = Rule::new("self.sensitiveFields.all(s, self.fields.exists(f, f.name == s))")
        .message("every sensitive field must name a declared field")
        .field_path(".sensitiveFields"),
    validation = Rule::new("!self.sensitiveFields.exists(s, s in self.quasiIdentifiers)")
        .message("a field is either a quasi-identifier or sensitive, not both")
        .field_path(".sensitiveFields"),
    validation = Rule::new("!has(self.kAnonymity) || !has(self.kAnonymity.minL) || size(self.sensitiveFields) > 0")
        .message("kAnonymity.minL needs at least one sensitive field")
        .field_path(".kAnonymity.minL"),
)]
pub struct OpenDatasetSpec {
    /// Title shown on the portal.
    #[schemars(length(min = 1, max = 200))]
    pub title: String,

    /// What the dataset holds, shown on the portal.
    #[serde(default)]
    #[schemars(length(max = 4000))]
    pub description: String,

    /// The portal category (数据开放分类) the dataset is listed under.
    pub category: DatasetCategory,

    /// `unconditional` (无条件开放: anyone may download) or `conditional` (有条件开放: only with
    /// an approved application's token).
    pub openness: Openness,

    /// Where the records come from.
    pub source: DatasetSource,

    /// The portal node (an ExchangeNode with `openDataPortal: true`) that publishes the dataset.
    pub portal: ObjectReference,

    /// Every field of a record, in order, with its de-identification rule. Fields of the source
    /// that are not declared here are dropped.
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self.all(f, self.exists_one(g, g.name == f.name))").message("field names must be unique"))]
    pub fields: Vec<DatasetField>,

    /// Fields that together could re-identify a person (age, region, sex, ...), checked for
    /// k-anonymity.
    #[serde(default)]
    #[schemars(length(max = 32), inner(length(max = 128)))]
    pub quasi_identifiers: Vec<String>,

    /// The k-anonymity every published combination of quasi-identifiers must reach (and, with
    /// `minL`, the l-diversity of the sensitive fields within it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k_anonymity: Option<KAnonymity>,

    /// Fields whose values a group of records sharing their quasi-identifiers must not all
    /// share (a diagnosis, a benefit): with `kAnonymity.minL`, every published group holds at
    /// least l distinct values of each.
    #[serde(default)]
    #[schemars(length(max = 32), inner(length(max = 128)))]
    pub sensitive_fields: Vec<String>,

    /// The prosecutor risk (1 / the size of a record's group of quasi-identifiers), in percent,
    /// above which a record counts as at risk in `status.reidentificationRisk`; 20 (groups of
    /// fewer than 5) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub risk_threshold_percent: Option<i32>,

    /// Start the CSV download with a UTF-8 byte-order mark, so that spreadsheet programs read
    /// its Chinese text as UTF-8. The files are UTF-8 either way.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub csv_byte_order_mark: bool,

    /// The key of keyed pseudonyms, one per dataset, from a Secret in the dataset's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym_key_ref: Option<SecretKeyReference>,

    /// Download formats offered; every file is gzip-compressed and has a SHA-256.
    #[serde(default = "default_formats")]
    #[schemars(length(min = 1))]
    pub formats: Vec<DownloadFormat>,

    /// The licence the data is opened under, as an SPDX-style identifier.
    #[serde(default = "default_license")]
    pub license: String,

    /// Cron schedule (five fields, UTC) on which the source is re-read and a new version
    /// published if it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = CRON_PATTERN))]
    pub refresh_schedule: Option<String>,
}

fn default_formats() -> Vec<DownloadFormat> {
    vec![DownloadFormat::Csv, DownloadFormat::Json]
}

fn default_license() -> String {
    "CC-BY-4.0".to_owned()
}

/// The open-data categories of the national portal, from the e-government plan.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetCategory {
    /// 企业登记.
    EnterpriseRegistration,
    /// 信用.
    Credit,
    /// 交通.
    Transport,
    /// 医疗.
    Medical,
    /// 卫生.
    Health,
    /// 就业.
    Employment,
    /// 社保.
    SocialSecurity,
    /// 地理.
    Geography,
    /// 文化.
    Culture,
    /// 教育.
    Education,
    /// 科技.
    Science,
    /// 知识产权.
    IntellectualProperty,
    /// 资源.
    NaturalResources,
    /// 农业.
    Agriculture,
    /// 林业.
    Forestry,
    /// 环境.
    Environment,
    /// 安监.
    WorkSafety,
    /// 质量.
    Quality,
    /// 统计.
    Statistics,
    /// 气象.
    Weather,
}

/// How openly a dataset may be downloaded.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Openness {
    /// Anyone may download it (无条件开放).
    Unconditional,
    /// Only holders of an approved application's token may download it (有条件开放).
    Conditional,
}

/// Where a dataset's records come from: exactly one of the options.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("[has(self.configMapRef), has(self.secretRef), has(self.exchangeResource)].filter(x, x).size() == 1").message("set exactly one of configMapRef, secretRef and exchangeResource"),
    validation = Rule::new("!has(self.exchangeResource) || !has(self.encoding) || self.encoding == 'utf-8'").message("an exchange resource's records are always UTF-8; encoding applies to a ConfigMap's or Secret's CSV").field_path(".encoding"),
)]
pub struct DatasetSource {
    /// A CSV file in a ConfigMap key, in the dataset's namespace (small datasets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<LocalKeyReference>,

    /// A CSV file in a Secret key, in the dataset's namespace (small datasets with personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalKeyReference>,

    /// A resource of the exchange hub's shared catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_resource: Option<ExchangeResourceReference>,

    /// The character encoding of a ConfigMap's or Secret's CSV: `utf-8` (the default) or
    /// `gb18030` (which covers GBK and GB2312). The published files are UTF-8 either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<SourceEncoding>,
}

/// The character encoding of a CSV source.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SourceEncoding {
    /// UTF-8 (a leading byte-order mark is allowed).
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// GB 18030, the national standard that covers GBK and GB2312.
    #[serde(rename = "gb18030")]
    Gb18030,
}

/// A key of a ConfigMap or Secret in the referring object's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LocalKeyReference {
    /// Name of the ConfigMap or Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the CSV text.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// A resource of an exchange node's shared catalog.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeResourceReference {
    /// The ExchangeNode whose catalog holds the resource.
    pub node: ObjectReference,
    /// The resource's code in the catalog (政务信息资源代码).
    #[schemars(length(min = 1, max = 64))]
    pub resource_code: String,
}

/// One field of a dataset and what de-identification does to it.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.action != 'mask' || has(self.mask)").message("action mask needs mask settings").field_path(".mask"),
    validation = Rule::new("self.action != 'generalize' || has(self.generalize)").message("action generalize needs generalize settings").field_path(".generalize"),
    validation = Rule::new("self.action != 'dateShift' || has(self.dateShift)").message("action dateShift needs dateShift settings").field_path(".dateShift"),
)]
pub struct DatasetField {
    /// The column name in the source.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,

    /// Whether the field holds personal information (个人信息). A personal field may only be
    /// published through a protective action; `keep` on a personal field refuses publication.
    #[serde(default)]
    pub personal: bool,

    /// What happens to the field: `keep`, `drop`, `mask`, `pseudonymize`, `generalize` or
    /// `dateShift`.
    pub action: FieldAction,

    /// Settings of `mask`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<MaskRule>,

    /// Settings of `pseudonymize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonymize: Option<PseudonymRule>,

    /// Settings of `generalize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generalize: Option<GeneralizeRule>,

    /// Settings of `dateShift`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_shift: Option<DateShiftRule>,

    /// Identifiers this field publishes on purpose (a hospital's public switchboard number),
    /// which the content gate then lets through in this field only; any other kind found still
    /// refuses the version. Shown on the portal with its justification and recorded in the
    /// portal's audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_identifiers: Option<DeclaredIdentifiers>,
}

/// A declaration that a field publishes identifiers on purpose.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.justification.trim().size() > 0").message("a declared identifier needs a written justification").field_path(".justification"))]
pub struct DeclaredIdentifiers {
    /// The kinds of identifier the field may publish.
    #[schemars(length(min = 1, max = 7))]
    pub kinds: Vec<IdentifierKind>,
    /// Why publishing them is right (public by law, an official's published contact), shown
    /// on the portal.
    #[schemars(length(min = 1, max = 1000))]
    pub justification: String,
}

/// A kind of personal identifier the content gate looks for in every published value.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub enum IdentifierKind {
    /// An 18-character resident identity number (GB 11643) with a valid check character,
    /// including the residence permits of Hong Kong, Macao and Taiwan residents.
    ResidentId,
    /// A 15-digit identity number of before 1999: a region prefix and a real birth date.
    LegacyResidentId,
    /// A mainland mobile number, with or without +86 / 0086, spaces, dashes or parentheses.
    MobilePhone,
    /// A bank card number: 16 to 19 digits with a valid Luhn check digit.
    BankCard,
    /// An e-mail address.
    Email,
    /// A passport number of the People's Republic (E, G, D, S or P and 8 digits; E, a letter
    /// and 7 digits).
    Passport,
    /// A travel permit number: to Hong Kong and Macao (C), to Taiwan (L), a Hong Kong or
    /// Macao resident's permit to the mainland (H, M).
    TravelPermit,
}

/// A de-identification action.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum FieldAction {
    /// Publish the value unchanged.
    Keep,
    /// Leave the field out.
    Drop,
    /// Replace all but the first and last few characters.
    Mask,
    /// Replace the value with a keyed hash (HMAC), stable within the dataset.
    Pseudonymize,
    /// Coarsen the value: a date to its year or month, a region code to a prefix, a number to a
    /// band.
    Generalize,
    /// Move a date by a per-record offset derived from the pseudonym key.
    DateShift,
}

/// Settings of the `mask` action.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MaskRule {
    /// Characters kept at the start.
    #[serde(default)]
    #[schemars(range(min = 0, max = 32))]
    pub keep_first: i32,
    /// Characters kept at the end.
    #[serde(default)]
    #[schemars(range(min = 0, max = 32))]
    pub keep_last: i32,
    /// The character that replaces the others.
    #[serde(default = "default_mask_character")]
    #[schemars(length(min = 1, max = 1))]
    pub character: String,
}

fn default_mask_character() -> String {
    "*".to_owned()
}

/// Settings of the `pseudonymize` action.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PseudonymRule {
    /// `hmac-sha256` (the default) or `hmac-sm3` (national cryptography, GB/T 32905).
    #[serde(default)]
    pub algorithm: PseudonymAlgorithm,
}

/// The keyed hash behind pseudonyms.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PseudonymAlgorithm {
    /// HMAC with SHA-256.
    #[default]
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// HMAC with SM3.
    #[serde(rename = "hmac-sm3")]
    HmacSm3,
}

/// Settings of the `generalize` action: exactly one of the options.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.date), has(self.regionPrefix), has(self.numberBand)].filter(x, x).size() == 1").message("set exactly one of date, regionPrefix and numberBand"))]
pub struct GeneralizeRule {
    /// Keep a date's `year` or `month`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<DatePrecision>,
    /// Keep this many leading digits of a region code (2: province, 4: city), zero-filling the
    /// rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    pub region_prefix: Option<i32>,
    /// Replace a number by the band of this width it falls in (`30-39` for width 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub number_band: Option<i64>,
}

/// How much of a date generalization keeps.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatePrecision {
    /// The year only.
    Year,
    /// The year and month.
    Month,
}

/// Settings of the `dateShift` action.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DateShiftRule {
    /// The largest shift in days, either way.
    #[schemars(range(min = 1, max = 3650))]
    pub max_days: i32,
}

/// The k-anonymity requirement of a dataset.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KAnonymity {
    /// Every combination of quasi-identifier values must appear in at least this many records.
    #[schemars(range(min = 2, max = 1000))]
    pub min_k: i32,
    /// Leave out the records of rarer combinations (and, with `minL`, of less diverse ones)
    /// instead of refusing to publish.
    #[serde(default)]
    pub suppress_rare_groups: bool,
    /// The most records suppression may leave out, in percent of the records read; 5 when
    /// unset. Past it the published data says more about the suppression than about the
    /// population: generalize the quasi-identifiers further instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 50))]
    pub max_suppressed_percent: Option<i32>,
    /// l-diversity: every published group holds at least this many distinct values of each of
    /// `sensitiveFields` (a group of k people who all share one diagnosis reveals it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 100))]
    pub min_l: Option<i32>,
}

/// A download format.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DownloadFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// What the operator observed and did for an OpenDataset.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OpenDatasetStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Progressing`, `Degraded` and `Published`.
    #[serde(default)]
    pub conditions: Vec<Condition>,

    /// The version being served; grows by one with every publication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_version: Option<i64>,

    /// Records in the published version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_count: Option<i64>,

    /// SHA-256 of the published CSV file, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,

    /// Where each format can be downloaded.
    #[serde(default)]
    pub download_urls: Vec<String>,

    /// When the served version was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_published: Option<Time>,

    /// Fingerprint of the spec, the source and the pseudonym key the served version was made
    /// from: a new version is made when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_digest: Option<String>,

    /// Records of the source left out because their combination of quasi-identifiers was rarer
    /// than k.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed_records: Option<i64>,

    /// Records in the smallest published group of quasi-identifiers (the k reached).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smallest_group: Option<i64>,

    /// The re-identification risk of the served version, measured as ARX does over the
    /// published groups of quasi-identifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reidentification_risk: Option<ReidentificationRisk>,

    /// What the content gate found in the last version it refused: per field and kind, the
    /// number of records holding such an identifier (never the values). Empty once a version
    /// passes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub personal_data_findings: Vec<PersonalDataFinding>,
}

/// The prosecutor re-identification risk of a published version (an attacker who knows a
/// person is in the data and their quasi-identifiers): a record's risk is 1 / the size of its
/// group.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReidentificationRisk {
    /// Records in the smallest published group.
    pub smallest_group: i64,
    /// Published groups of quasi-identifiers.
    pub groups: i64,
    /// The highest risk of any record, in percent (100 / the smallest group).
    pub highest_prosecutor_risk_percent: f64,
    /// The average risk over the records, in percent (100 × groups / records).
    pub average_prosecutor_risk_percent: f64,
    /// The risk above which a record counts as at risk, in percent.
    pub threshold_percent: f64,
    /// Records whose risk is above the threshold.
    pub records_at_risk: i64,
    /// The same, in percent of the published records.
    pub records_at_risk_percent: f64,
}

/// Identifiers of one kind the content gate found in one field.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PersonalDataFinding {
    /// The field.
    pub field: String,
    /// The kind of identifier.
    pub kind: IdentifierKind,
    /// Records whose published value of the field holds one.
    pub records: i64,
}
