//! `deploy/demo.sh` as a newcomer runs it: the default mode, everything as pods, here on clusters
//! of this test's own (`demo-test`, `demo-test-dr`, through GOVDC_DEMO_CLUSTER and
//! GOVDC_DEMO_DR_CLUSTER) and with every forwarded port moved (GOVDC_DEMO_PORT_OFFSET), so a
//! user's demo on `demo`/`demo-dr` and the usual ports is never touched nor read. Every sample
//! becomes Ready, the open-data portal answers on the address the script prints, and a second run
//! after a user edited a sample (client-side `kubectl apply`, the classic source of server-side
//! apply conflicts) and added a DepartmentCloud of their own works, takes the sample's field back
//! and leaves the user's object alone. `deploy/demo.sh down` ends it.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use govdc_test_support::{eventually, kube_bin, output_text, repo_root};
use serde_json::Value;

const PRIMARY: &str = "demo-test";
const STANDBY: &str = "demo-test-dr";
/// Added to every port the demo forwards to (8080-9093 become 38080-39093).
const PORT_OFFSET: u16 = 30000;
/// A run of the demo, builds up to date: clusters, images, the chart, the hubs, the datasets.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);
const READY_TIMEOUT: Duration = Duration::from_secs(300);

fn demo_command(args: &[&str]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg(repo_root().join("deploy/demo.sh"))
        .args(args)
        .current_dir(repo_root())
        .env("GOVDC_DEMO_CLUSTER", PRIMARY)
        .env("GOVDC_DEMO_DR_CLUSTER", STANDBY)
        .env("GOVDC_DEMO_PORT_OFFSET", PORT_OFFSET.to_string());
    command
}

/// One `deploy/demo.sh` run, in a process group of its own (the script, its port-forward loops
/// and their kubectl), stopped as Ctrl-C stops it when dropped.
struct Demo {
    child: Child,
    log: PathBuf,
}

impl Demo {
    fn start(run: &str) -> Demo {
        let dir = repo_root().join("target/test-logs");
        std::fs::create_dir_all(&dir).expect("log directory");
        let log = dir.join(format!("demo-{run}.log"));
        let file = File::create(&log).expect("demo log");
        let child = demo_command(&[])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .process_group(0)
            .spawn()
            .expect("starting deploy/demo.sh");
        Demo { child, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the script's closing words; its output then.
    fn wait_up(&mut self) -> String {
        let started = Instant::now();
        loop {
            let output = self.output();
            if output.contains("Forwarding until Ctrl-C") {
                eprintln!(
                    "figures: deploy/demo.sh up in {:.0}s",
                    started.elapsed().as_secs_f64()
                );
                return output;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("deploy/demo.sh ended ({status}) before it was up:\n{output}");
            }
            assert!(
                started.elapsed() < RUN_TIMEOUT,
                "deploy/demo.sh not up within {RUN_TIMEOUT:?}:\n{output}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// SIGINT to the whole group, as Ctrl-C in a terminal; SIGKILL after 20 s.
    fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-INT", "--", &group]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                // The port-forward loops go with the script (its trap); anything left of the
                // group goes now.
                let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `deploy/demo.sh down` for the test's clusters when the test ends, passed or not.
struct Down;

impl Drop for Down {
    fn drop(&mut self) {
        let _ = demo_command(&["down"]).output();
    }
}

fn kubectl(args: &[&str]) -> std::process::Output {
    Command::new(kube_bin())
        .arg("kubectl")
        .arg("--kubeconfig")
        .arg(repo_root().join(format!("target/clusters/{PRIMARY}/kubeconfig")))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("running kubectl")
}

fn kubectl_json(args: &[&str]) -> Value {
    let output = kubectl(args);
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        output_text(&output)
    );
    serde_json::from_slice(&output.stdout).expect("kubectl's JSON")
}

/// The samples' govdc objects (the four kinds) as the cluster holds them now, each as
/// `Kind namespace/name` with whether it is Ready.
fn samples() -> Vec<(String, bool)> {
    let list = kubectl_json(&[
        "get",
        "-f",
        "deploy/samples/",
        "-f",
        "deploy/samples/datasets/",
        "-o",
        "json",
    ]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| {
            o["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("govdc.io/"))
        })
        .map(|o| {
            let what = format!(
                "{} {}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            let ready = o["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (what, ready)
        })
        .collect()
}

/// How many govdc objects the sample files hold.
fn sample_count() -> usize {
    ["deploy/samples", "deploy/samples/datasets"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(repo_root().join(dir)).expect("samples"))
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .map(|e| std::fs::read_to_string(e.path()).expect("a sample file"))
        .map(|text| {
            text.lines()
                .filter(|l| {
                    [
                        "DepartmentCloud",
                        "ExchangeNode",
                        "OpenDataset",
                        "BackupPolicy",
                    ]
                    .iter()
                    .any(|k| l.trim_end() == format!("kind: {k}"))
                })
                .count()
        })
        .sum()
}

async fn every_sample_ready() {
    let expected = sample_count();
    assert!(expected >= 10, "the samples hold {expected} govdc objects");
    let last = std::sync::Mutex::new(Vec::new());
    eventually("every sample Ready", READY_TIMEOUT, || async {
        let samples = tokio::task::block_in_place(samples);
        let ready = samples.len() == expected && samples.iter().all(|(_, ready)| *ready);
        if let Ok(mut last) = last.lock() {
            *last = samples;
        }
        ready.then_some(())
    })
    .await
    .unwrap_or_else(|e| {
        let last = last.lock().map(|l| l.clone()).unwrap_or_default();
        let status = kubectl(&["get", "govdc", "-A"]);
        panic!("{e}: {last:?}\n{}", output_text(&status))
    });
}

/// The portal's website address the script printed (`open-data portal: http://...`).
fn portal_address(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("open-data portal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the demo printed no portal address:\n{output}"))
        .to_owned()
}

/// The portal's website at the printed address, from this machine: an HTML page that lists both
/// sample datasets by title; and the CKAN API beside it lists them too.
async fn portal_answers(address: &str) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let search = format!(
        "{}/api/3/action/package_search",
        address.trim_end_matches("/datasets")
    );
    let last = std::sync::Mutex::new(String::new());
    eventually(
        "the portal answers with both datasets",
        READY_TIMEOUT,
        || async {
            let page = http.get(address).send().await.ok()?;
            let html = page.status().is_success()
                && page
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("text/html"));
            let body = page.text().await.ok()?;
            let api: Value =
                serde_json::from_str(&http.get(&search).send().await.ok()?.text().await.ok()?)
                    .ok()?;
            let names: Vec<String> = api["result"]["results"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["name"].as_str().map(str::to_owned))
                .collect();
            if let Ok(mut last) = last.lock() {
                *last = format!(
                    "page html: {html}, {} bytes; datasets: {names:?}",
                    body.len()
                );
            }
            let both = ["clinic-visits", "enterprise-registrations"]
                .iter()
                .all(|d| names.iter().any(|n| n.contains(d)));
            let titles = ["杭州市门诊就诊统计（脱敏）", "浙江省企业登记信息"]
                .iter()
                .all(|t| body.contains(t));
            (html && titles && both).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e} at {address}: {}",
            last.lock().map(|l| l.clone()).unwrap_or_default()
        )
    });
}

/// The sample BackupPolicy lists the national ExchangeNode, whose namespace (`govdc-hub`) has no
/// department label: it is protected with the node, so the standby holds the node, its hub's
/// StatefulSet at zero (warm, not running) with the primary's count recorded, and its key
/// Secret, all marked as the policy's; `backup failover` would start it there.
async fn national_hub_on_standby() {
    let standby = repo_root().join(format!("target/clusters/{STANDBY}/kubeconfig"));
    let get = |args: &[&str]| {
        let output = Command::new(kube_bin())
            .arg("kubectl")
            .arg("--kubeconfig")
            .arg(&standby)
            .args(args)
            .args(["-n", "govdc-hub", "-o", "json"])
            .output()
            .expect("running kubectl");
        output
            .status
            .success()
            .then(|| serde_json::from_slice::<Value>(&output.stdout).ok())
            .flatten()
    };
    let marked = |o: &Value| o["metadata"]["labels"]["govdc.io/backup-policy"] == "extranet-to-dr";
    let last = std::sync::Mutex::new(String::new());
    eventually(
        "the national hub's copies on the standby",
        READY_TIMEOUT,
        || async {
            let (node, hub, key) = tokio::task::block_in_place(|| {
                (
                    get(&["get", "exchangenode", "national"]),
                    get(&["get", "statefulset", "national-hub"]),
                    get(&["get", "secret", "national-hub-key"]),
                )
            });
            if let Ok(mut last) = last.lock() {
                *last = format!(
                    "node: {}, statefulset: {}, key: {}",
                    node.is_some(),
                    hub.as_ref()
                        .map(|h| h["spec"]["replicas"].to_string())
                        .unwrap_or_default(),
                    key.is_some()
                );
            }
            let (node, hub, key) = (node?, hub?, key?);
            (marked(&node)
                && marked(&hub)
                && marked(&key)
                && hub["spec"]["replicas"] == 0
                && hub["metadata"]["annotations"]["govdc.io/standby-replicas"] == "1")
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {}",
            last.lock().map(|l| l.clone()).unwrap_or_default()
        )
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_runs_as_pods_every_sample_gets_ready_the_portal_answers_and_a_second_run_after_user_edits_works()
 {
    let _down = Down;
    let mut first = Demo::start("first");
    let output = tokio::task::block_in_place(|| first.wait_up());
    let portal = portal_address(&output);
    assert_eq!(
        portal,
        format!("http://127.0.0.1:{}/datasets", 8081 + PORT_OFFSET),
        "{output}"
    );
    every_sample_ready().await;
    portal_answers(&portal).await;
    // Everything runs as pods: the operator's two replicas and the three hubs.
    let pods = kubectl_json(&["get", "pods", "-A", "-o", "json"]);
    let running: Vec<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["status"]["phase"] == "Running")
        .map(|p| {
            format!(
                "{}/{}",
                p["metadata"]["namespace"].as_str().unwrap_or_default(),
                p["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    for hub in ["national-hub-0", "zhejiang-hub-0", "guangdong-hub-0"] {
        assert!(
            running.contains(&format!("govdc-hub/{hub}")),
            "{hub} runs: {running:?}"
        );
    }
    assert_eq!(
        running
            .iter()
            .filter(|p| p.starts_with("govdc-system/govdc-"))
            .count(),
        2,
        "the operator's two replicas: {running:?}"
    );
    national_hub_on_standby().await;
    first.stop();

    // A user's edits: a sample's field changed with client-side apply, and an object of their
    // own.
    let edited = kubectl(&["get", "dc", "zj-data", "-o", "json"]);
    assert!(edited.status.success(), "{}", output_text(&edited));
    let mut zj: Value = serde_json::from_slice(&edited.stdout).expect("JSON");
    let sample_admins = zj["spec"]["admins"].clone();
    assert!(sample_admins.is_array(), "{zj}");
    zj["spec"]["admins"] = serde_json::json!([{"kind": "User", "name": "edited.by@user"}]);
    for field in [
        "managedFields",
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generation",
    ] {
        if let Some(meta) = zj["metadata"].as_object_mut() {
            meta.remove(field);
        }
    }
    if let Some(object) = zj.as_object_mut() {
        object.remove("status");
    }
    let user_dc = serde_json::json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
        "metadata": {"name": "demo-user-added"},
        "spec": {
            "department": {"name": "用户自建部门", "creditCode": govdc_crds::validation::credit_code::complete("11330000MB000077"), "level": "municipal", "regionCode": "330100"},
            "networkZone": "extranet", "protectionLevel": 2, "environments": [{"name": "prod"}],
        },
    });
    for object in [&zj, &user_dc] {
        let applied = Command::new(kube_bin())
            .arg("kubectl")
            .arg("--kubeconfig")
            .arg(repo_root().join(format!("target/clusters/{PRIMARY}/kubeconfig")))
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                if let Some(mut input) = child.stdin.take() {
                    input.write_all(object.to_string().as_bytes())?;
                }
                child.wait_with_output()
            })
            .expect("kubectl apply");
        assert!(applied.status.success(), "{}", output_text(&applied));
    }

    let mut second = Demo::start("second");
    let output = tokio::task::block_in_place(|| second.wait_up());
    every_sample_ready().await;
    portal_answers(&portal_address(&output)).await;
    let zj = kubectl_json(&["get", "dc", "zj-data", "-o", "json"]);
    assert_eq!(
        zj["spec"]["admins"], sample_admins,
        "the second run takes the sample's field back"
    );
    let user = kubectl_json(&["get", "dc", "demo-user-added", "-o", "json"]);
    assert!(
        user["metadata"]["deletionTimestamp"].is_null(),
        "the user's own DepartmentCloud is left alone: {user}"
    );
    second.stop();
}
