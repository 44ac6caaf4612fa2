//! The hub's configuration loader: `govdc_hub::config::Config::load` (the YAML file the
//! operator's ConfigMap holds, overridden by `GOVDC_HUB_*` variables).
//!
//! Input: the YAML file, then optionally a NUL byte and `NAME=value` lines for the environment.
//!
//! Checks, on a configuration the loader accepts:
//! - it holds what `check` promises: the name a DNS label, the region code empty or six digits,
//!   a portal only on the extranet and never on the monitor's address, a portal base URL that
//!   works (http or https, a host, no trailing `/`), durations above zero;
//! - the same configuration given only as environment variables (each key written back as text)
//!   loads to an equal configuration: the file and the environment mean the same;
//! - unknown keys are reported, and only keys the file has.
//!
//! A refusal is an error with a message; never a panic.
#![no_main]

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use govdc_hub::config::{Config, KEYS, LogFormat, Network};
use libfuzzer_sys::fuzz_target;

fn duration_text(d: std::time::Duration) -> String {
    let signed = jiff::SignedDuration::try_from(d).unwrap_or_else(|e| panic!("{d:?}: {e}"));
    format!("{signed:#}")
}

fn as_environment(config: &Config) -> Vec<(&'static str, String)> {
    let path = |p: &Path| p.to_str().map(str::to_owned).unwrap_or_default();
    let addr = |a: SocketAddr| a.to_string();
    let mut vars = vec![
        ("GOVDC_HUB_NAME", config.name.clone()),
        (
            "GOVDC_HUB_LEVEL",
            format!("{:?}", config.level).to_lowercase(),
        ),
        (
            "GOVDC_HUB_NETWORK",
            format!("{:?}", config.network).to_lowercase(),
        ),
        ("GOVDC_HUB_REGION_CODE", config.region_code.clone()),
        ("GOVDC_HUB_LISTEN", addr(config.listen)),
        ("GOVDC_HUB_METRICS_LISTEN", addr(config.metrics_listen)),
        ("GOVDC_HUB_DATA_DIR", path(&config.data_dir)),
        ("GOVDC_HUB_AUTH_KEY_FILE", path(&config.auth_key_file)),
        (
            "GOVDC_HUB_AUDIT_ALGORITHM",
            config.audit_algorithm.as_str().to_owned(),
        ),
        (
            "GOVDC_HUB_FEDERATION_INTERVAL",
            duration_text(config.federation_interval),
        ),
        (
            "GOVDC_HUB_LOG_FORMAT",
            match config.log_format {
                LogFormat::Json => "json",
                LogFormat::Text => "text",
            }
            .to_owned(),
        ),
        (
            "GOVDC_HUB_MONITOR_REQUEST_DEADLINE",
            duration_text(config.monitor_request_deadline),
        ),
    ];
    if let Some(tls) = &config.tls {
        vars.push(("GOVDC_HUB_TLS_CERT_FILE", path(&tls.cert_file)));
        vars.push(("GOVDC_HUB_TLS_KEY_FILE", path(&tls.key_file)));
    }
    if let Some(a) = config.portal_listen {
        vars.push(("GOVDC_HUB_PORTAL_LISTEN", addr(a)));
    }
    if let Some(url) = &config.portal_public_url {
        vars.push(("GOVDC_HUB_PORTAL_PUBLIC_URL", url.clone()));
    }
    if let Some(a) = config.monitor_listen {
        vars.push(("GOVDC_HUB_MONITOR_LISTEN", addr(a)));
    }
    vars
}

fn file() -> &'static Path {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        std::env::temp_dir().join(format!("govdc-fuzz-config-{}.yaml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let (yaml, env) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let env: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let written = std::fs::File::create(file()).and_then(|mut f| f.write_all(yaml));
    if let Err(e) = written {
        panic!("writing {}: {e}", file().display());
    }
    let (config, unknown) = match Config::load(Some(file()), lookup) {
        Ok(loaded) => loaded,
        Err(e) => {
            assert!(!format!("{e:#}").is_empty());
            return;
        }
    };

    assert!(
        !config.name.is_empty()
            && config.name.len() <= 63
            && config
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "{:?}",
        config.name
    );
    assert!(
        config.region_code.is_empty()
            || (config.region_code.len() == 6
                && config.region_code.bytes().all(|b| b.is_ascii_digit())),
        "{:?}",
        config.region_code
    );
    assert!(!config.federation_interval.is_zero() && !config.monitor_request_deadline.is_zero());
    if let Some(listen) = config.portal_listen {
        assert_eq!(config.network, Network::Extranet);
        assert_ne!(config.monitor_listen, Some(listen));
        let base = config
            .portal_base_url(listen)
            .unwrap_or_else(|e| panic!("an accepted portal without a base URL: {e:#}"));
        assert!(
            base.starts_with("http://") || base.starts_with("https://"),
            "{base}"
        );
        assert!(!base.ends_with('/'), "{base}");
    }
    let text = String::from_utf8_lossy(yaml);
    for key in &unknown {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        assert!(
            text.contains(leaf),
            "unknown key {key:?} is not in the file"
        );
        assert!(!KEYS.iter().any(|(k, _)| k == key), "{key} is a known key");
    }

    let vars = as_environment(&config);
    let from_env = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    match Config::load(None, from_env) {
        Ok((again, unknown)) => {
            assert!(unknown.is_empty());
            assert_eq!(
                again, config,
                "the same configuration as environment variables differs"
            );
        }
        Err(e) => panic!(
            "{config:?} was accepted from the file, but not as environment variables {vars:?}: {e:#}"
        ),
    }
});
