//! The hub's configuration: a YAML file (the ConfigMap the operator writes) overridden key by key
//! by `GOVDC_HUB_<KEY>` environment variables (`metricsListen` -> `GOVDC_HUB_METRICS_LISTEN`,
//! `tls.certFile` -> `GOVDC_HUB_TLS_CERT_FILE`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::audit::Algorithm;

/// Administrative level of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// 国家级.
    National,
    /// 省级.
    Provincial,
    /// 市级.
    Municipal,
}

/// The network a node is on; the two never federate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// 政务内网, classified.
    Intranet,
    /// 政务外网, unclassified.
    Extranet,
}

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (the default, for log collectors).
    #[default]
    Json,
    /// Human-readable, for a terminal.
    Text,
}

/// Serving certificate and key, PEM files.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// Certificate chain.
    pub cert_file: PathBuf,
    /// Private key.
    pub key_file: PathBuf,
}

/// The configuration of one node.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// The node's name; the audience of its tokens.
    pub name: String,
    /// Its administrative level.
    pub level: Level,
    /// Its network.
    pub network: Network,
    /// GB/T 2260 region code.
    #[serde(default, deserialize_with = "string_or_number")]
    pub region_code: String,
    /// gRPC address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `/metrics` and `/healthz` address.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: SocketAddr,
    /// Directory of the store (a PVC in the cluster).
    pub data_dir: PathBuf,
    /// File holding the token signing key (its bytes, exactly).
    pub auth_key_file: PathBuf,
    /// Digest of the audit chain.
    #[serde(default)]
    pub audit_algorithm: Algorithm,
    /// How often the catalog is pushed to the parent even without a change, e.g. `10s`.
    #[serde(default = "default_interval", deserialize_with = "duration")]
    pub federation_interval: Duration,
    /// TLS for the gRPC port; plaintext without.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// Log format.
    #[serde(default)]
    pub log_format: LogFormat,
    /// The open-data portal's HTTP address; the node serves no portal without it (extranet only).
    #[serde(default)]
    pub portal_listen: Option<SocketAddr>,
    /// The portal's public base URL (`https://data.example.gov.cn`), the base of every absolute
    /// link it serves (downloads, CKAN, DCAT); the operator sets it from the ExchangeNode. Links
    /// are never built from a request's `Host`, which the client chooses. Without it, the
    /// portal's own address is the base, so it is required when `portalListen` binds every
    /// address.
    #[serde(default)]
    pub portal_public_url: Option<String>,
    /// The sharing-monitor website's HTTP address (全国政务信息共享网站, internal: the operator's
    /// NetworkPolicy opens it to member departments and the operator only); none without it.
    #[serde(default)]
    pub monitor_listen: Option<SocketAddr>,
    /// How long a conditional access request may wait for the provider's decision before the
    /// monitor lists it as overdue, e.g. `240h` (ten days, the default).
    #[serde(default = "default_request_deadline", deserialize_with = "duration")]
    pub monitor_request_deadline: Duration,
}

fn default_request_deadline() -> Duration {
    Duration::from_secs(10 * 24 * 3600)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 50051))
}

fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9090))
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

/// Every key, as `(path in the file, environment variable)`.
pub const KEYS: &[(&str, &str)] = &[
    ("name", "GOVDC_HUB_NAME"),
    ("level", "GOVDC_HUB_LEVEL"),
    ("network", "GOVDC_HUB_NETWORK"),
    ("regionCode", "GOVDC_HUB_REGION_CODE"),
    ("listen", "GOVDC_HUB_LISTEN"),
    ("metricsListen", "GOVDC_HUB_METRICS_LISTEN"),
    ("dataDir", "GOVDC_HUB_DATA_DIR"),
    ("authKeyFile", "GOVDC_HUB_AUTH_KEY_FILE"),
    ("auditAlgorithm", "GOVDC_HUB_AUDIT_ALGORITHM"),
    ("federationInterval", "GOVDC_HUB_FEDERATION_INTERVAL"),
    ("tls.certFile", "GOVDC_HUB_TLS_CERT_FILE"),
    ("tls.keyFile", "GOVDC_HUB_TLS_KEY_FILE"),
    ("logFormat", "GOVDC_HUB_LOG_FORMAT"),
    ("portalListen", "GOVDC_HUB_PORTAL_LISTEN"),
    ("portalPublicUrl", "GOVDC_HUB_PORTAL_PUBLIC_URL"),
    ("monitorListen", "GOVDC_HUB_MONITOR_LISTEN"),
    (
        "monitorRequestDeadline",
        "GOVDC_HUB_MONITOR_REQUEST_DEADLINE",
    ),
];

// A region code written unquoted in YAML is a number; it means the same code.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Null => Ok(String::new()),
        other => Err(serde::de::Error::custom(format!(
            "expected a region code, found {other}"
        ))),
    }
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// Parses `10s`, `1m30s`, `500ms` or an ISO 8601 duration into a positive duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a duration such as 10s or 1m30s: {e}"))?;
    let duration = Duration::try_from(signed).map_err(|_| format!("{text:?} is negative"))?;
    if duration.is_zero() {
        return Err(format!("{text:?} is zero"));
    }
    Ok(duration)
}

impl Config {
    /// Reads `file` (if any), applies the environment's overrides (`env` looks a variable up) and
    /// checks the result. Unknown keys in the file are reported, not fatal, so that a newer
    /// operator's ConfigMap does not stop an older hub.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<(Config, Vec<String>)> {
        let mut value = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("reading the configuration file {}", path.display())
                })?;
                let yaml: serde_json::Value = serde_norway::from_str(&text)
                    .with_context(|| format!("parsing {} as YAML", path.display()))?;
                match yaml {
                    serde_json::Value::Null => serde_json::Value::Object(Default::default()),
                    serde_json::Value::Object(_) => yaml,
                    _ => bail!("{} is not a YAML mapping of keys", path.display()),
                }
            }
            None => serde_json::Value::Object(Default::default()),
        };
        let unknown = unknown_keys(&value);
        for (key, var) in KEYS {
            if let Some(text) = env(var).filter(|v| !v.is_empty()) {
                set_path(&mut value, key, text);
            }
        }
        let source = match file {
            Some(path) => format!("{} and the GOVDC_HUB_* environment", path.display()),
            None => "the GOVDC_HUB_* environment".to_owned(),
        };
        let config: Config = serde_json::from_value(value)
            .with_context(|| format!("invalid configuration (from {source})"))?;
        config.check()?;
        Ok((config, unknown))
    }

    fn check(&self) -> anyhow::Result<()> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 63
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            bail!(
                "name {:?} must be 1-63 lower-case letters, digits or '-' (a DNS label)",
                self.name
            );
        }
        // An empty path in the file would be the working directory (found by the `config` fuzz
        // target: the environment treats an empty value as unset, the file took it).
        for (key, path) in [
            ("dataDir", &self.data_dir),
            ("authKeyFile", &self.auth_key_file),
        ] {
            if path.as_os_str().is_empty() {
                bail!("{key} is empty; it must name a path");
            }
        }
        if !self.region_code.is_empty()
            && (self.region_code.len() != 6
                || !self.region_code.bytes().all(|b| b.is_ascii_digit()))
        {
            bail!(
                "regionCode {:?} must be a six-digit GB/T 2260 code",
                self.region_code
            );
        }
        // The open-data portal is public: the classified intranet never serves one.
        if self.portal_listen.is_some() && self.network == Network::Intranet {
            bail!(
                "portalListen is set on an intranet node; the open-data portal runs on the extranet only"
            );
        }
        if let Some(listen) = self.portal_listen {
            self.portal_base_url(listen)?;
            if self.monitor_listen == Some(listen) {
                bail!(
                    "monitorListen and portalListen are both {listen}: the internal monitor \
                     needs its own port, which only government namespaces reach"
                );
            }
        }
        Ok(())
    }

    /// The base of the portal's absolute links (no trailing slash): `portalPublicUrl`, checked,
    /// else `http://` and `listen` when that is one address a client can reach.
    pub fn portal_base_url(&self, listen: SocketAddr) -> anyhow::Result<String> {
        match self.portal_public_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => {
                let rest = url
                    .strip_prefix("https://")
                    .or_else(|| url.strip_prefix("http://"));
                let host = rest.and_then(|r| r.split('/').next()).unwrap_or_default();
                let clean = !url.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '@' | '\\')
                });
                if host.is_empty() || !clean {
                    bail!(
                        "portalPublicUrl {url:?} must be an http:// or https:// URL with a host, \
                         and no query, fragment or user"
                    );
                }
                Ok(url.trim_end_matches('/').to_owned())
            }
            _ if listen.ip().is_unspecified() => bail!(
                "portalPublicUrl is required: portalListen {listen} binds every address, and the \
                 portal's links are never built from the Host a client sends"
            ),
            _ => Ok(format!("http://{listen}")),
        }
    }
}

fn unknown_keys(value: &serde_json::Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Some(map) = value.as_object() {
        for (key, inner) in map {
            if key == "tls" {
                if let Some(tls) = inner.as_object() {
                    for k in tls.keys() {
                        if !KEYS.iter().any(|(p, _)| *p == format!("tls.{k}")) {
                            unknown.push(format!("tls.{k}"));
                        }
                    }
                }
            } else if !KEYS.iter().any(|(p, _)| p == key) {
                unknown.push(key.clone());
            }
        }
    }
    unknown
}

fn set_path(value: &mut serde_json::Value, path: &str, text: String) {
    let mut target = value;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !target.is_object() {
            *target = serde_json::Value::Object(Default::default());
        }
        let Some(map) = target.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), serde_json::Value::String(text));
            return;
        }
        target = map
            .entry(part.to_owned())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("govdc-hub-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("config.yaml");
        std::fs::write(
            &file,
            "name: zhejiang\nlevel: provincial\nnetwork: extranet\nregionCode: 330000\n\
             dataDir: /var/lib/govdc-hub\nauthKeyFile: /etc/key\nfederationInterval: 1m30s\n\
             tls: {certFile: /c, keyFile: /k}\nreplicas: 1\n",
        )
        .expect("writes");
        let (config, unknown) = Config::load(
            Some(&file),
            env(&[
                ("GOVDC_HUB_LISTEN", "127.0.0.1:1234"),
                ("GOVDC_HUB_DATA_DIR", "/tmp/x"),
                ("GOVDC_HUB_TLS_KEY_FILE", "/k2"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.region_code, "330000");
        assert_eq!(config.listen, "127.0.0.1:1234".parse().expect("addr"));
        assert_eq!(config.metrics_listen, default_metrics_listen());
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.federation_interval, Duration::from_secs(90));
        assert_eq!(config.audit_algorithm, Algorithm::Sha256);
        assert_eq!(
            config.tls.as_ref().map(|t| t.key_file.clone()),
            Some("/k2".into())
        );
        assert_eq!(unknown, vec!["replicas".to_owned()]);
    }

    #[test]
    fn the_monitor_needs_a_port_of_its_own() {
        let base = [
            ("GOVDC_HUB_NAME", "x"),
            ("GOVDC_HUB_LEVEL", "national"),
            ("GOVDC_HUB_NETWORK", "extranet"),
            ("GOVDC_HUB_DATA_DIR", "/d"),
            ("GOVDC_HUB_AUTH_KEY_FILE", "/k"),
            ("GOVDC_HUB_PORTAL_LISTEN", "127.0.0.1:8080"),
        ];
        let (config, _) = Config::load(
            None,
            env(&[
                &base[..],
                &[
                    ("GOVDC_HUB_MONITOR_LISTEN", "127.0.0.1:8081"),
                    ("GOVDC_HUB_MONITOR_REQUEST_DEADLINE", "48h"),
                ],
            ]
            .concat()),
        )
        .expect("loads");
        assert_eq!(config.monitor_listen, "127.0.0.1:8081".parse().ok());
        assert_eq!(
            config.monitor_request_deadline,
            Duration::from_secs(48 * 3600)
        );
        let err = Config::load(
            None,
            env(&[&base[..], &[("GOVDC_HUB_MONITOR_LISTEN", "127.0.0.1:8080")]].concat()),
        )
        .expect_err("the portal's port is taken");
        assert!(format!("{err:#}").contains("monitorListen"), "{err:#}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::load(
            None,
            env(&[
                ("GOVDC_HUB_NAME", "x"),
                ("GOVDC_HUB_LEVEL", "county"),
                ("GOVDC_HUB_NETWORK", "extranet"),
                ("GOVDC_HUB_DATA_DIR", "/d"),
                ("GOVDC_HUB_AUTH_KEY_FILE", "/k"),
            ]),
        )
        .expect_err("county is no level");
        assert!(format!("{err:#}").contains("county"), "{err:#}");
        let err = Config::load(
            None,
            env(&[
                ("GOVDC_HUB_NAME", "x"),
                ("GOVDC_HUB_LEVEL", "national"),
                ("GOVDC_HUB_NETWORK", "extranet"),
                ("GOVDC_HUB_DATA_DIR", "/d"),
                ("GOVDC_HUB_AUTH_KEY_FILE", "/k"),
                ("GOVDC_HUB_AUDIT_ALGORITHM", "md5"),
            ]),
        )
        .expect_err("md5 is no audit algorithm");
        assert!(format!("{err:#}").contains("md5"), "{err:#}");
    }

    /// What the `config` fuzz target found (`fuzz/artifacts/config/`): an empty path in the file
    /// was accepted, where the same value in the environment counts as unset.
    #[test]
    fn empty_paths_in_the_file_are_refused() {
        for key in ["dataDir", "authKeyFile"] {
            let file = std::env::temp_dir().join(format!(
                "govdc-hub-config-empty-{key}-{}.yaml",
                std::process::id()
            ));
            let mut yaml =
                "name: n\nlevel: national\nnetwork: intranet\ndataDir: /d\nauthKeyFile: /k\n"
                    .replace(&format!("{key}: /d"), &format!("{key}: ''"))
                    .replace(&format!("{key}: /k"), &format!("{key}: ''"));
            yaml.push('\n');
            std::fs::write(&file, yaml).expect("a scratch file");
            let err = Config::load(Some(&file), |_| None).expect_err("an empty path");
            let _ = std::fs::remove_file(&file);
            assert!(format!("{err:#}").contains(key), "{err:#}");
        }
    }
}
