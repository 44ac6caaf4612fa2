//! The control plane restarting under a running operator: kube-apiserver is SIGKILLed while
//! DepartmentClouds converge, then etcd; each time the launcher starts the control plane again
//! (same ports, same data). The operator is never restarted: its watches resume, nothing is lost,
//! every tenant ends Ready, and a spec change after the restarts is acted on at once (a watch,
//! not the five-minute resync). On a cluster of the test's own (`faults`), since it restarts it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use govdc_crds::DepartmentCloud;
use govdc_test_support::fixtures;
use govdc_test_support::{
    OperatorProcess, TestEnv, eventually, govdc_cluster_bin, install_crds, output_text, repo_root,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const CLUSTER: &str = "faults";
const TENANTS: usize = 60;
const WAIT: Duration = Duration::from_secs(240);

fn tenant(env: &TestEnv, i: usize) -> DepartmentCloud {
    let code = fixtures::credit_code(&format!("11330000MC{i:06}"));
    fixtures::department_cloud(
        env,
        &format!("{}-t{i:02}", env.prefix),
        json!({
            "department": fixtures::department("浙江省卫生健康委员会", &code),
            "environments": [{"name": "prod"}, {"name": "test"}],
            "quota": {"requests.cpu": "2"},
        }),
    )
}

/// SIGKILLs one control-plane component of the test's cluster, waits a moment, and has the
/// launcher start the control plane again (it finds the cluster partly running and restarts it
/// on the same ports and data).
fn kill_and_restart(component: &str) {
    let pid_file = repo_root()
        .join("target/clusters")
        .join(CLUSTER)
        .join(format!("{component}.pid"));
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("reading {}: {e}", pid_file.display()));
    let killed = Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .expect("kill");
    assert!(killed.success(), "kill -KILL {component} ({})", pid.trim());
    eprintln!("{component} ({}) killed", pid.trim());
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let output = Command::new(govdc_cluster_bin())
        .args(["up", CLUSTER])
        .current_dir(repo_root())
        .output()
        .expect("govdc-cluster up");
    assert!(
        output.status.success(),
        "govdc-cluster up {CLUSTER}: {}",
        output_text(&output)
    );
    let said = output_text(&output);
    eprintln!("control plane back after {:?}: {said}", started.elapsed());
    // Moved ports would strand every client that read the kubeconfig before.
    assert!(
        !said.contains("moved"),
        "the restarted control plane moved: {said}"
    );
}

/// Creates a tenant through outages: a refused connection is tried again, an existing object is
/// fine (a create that reached etcd before its answer was lost).
async fn create_through_outages(clouds: &Api<DepartmentCloud>, cloud: &DepartmentCloud) {
    let deadline = Instant::now() + WAIT;
    loop {
        match clouds.create(&PostParams::default(), cloud).await {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.code == 409 => return,
            Err(error) if Instant::now() < deadline => {
                eprintln!("create during an outage: {error}; again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => panic!("creating a DepartmentCloud: {error}"),
        }
    }
}

#[tokio::test]
async fn the_operator_converges_through_api_server_and_etcd_restarts_without_a_restart_of_its_own()
{
    let env = TestEnv::new(CLUSTER, "cprestart").await;
    install_crds(&env.client).await.expect("install CRDs");
    let lease = env.namespace("lease").await;
    let mut operator = OperatorProcess::start(Path::new(OPERATOR), &env, &lease, "operator", &[]);
    let pid = operator.pid();
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());

    let creating = {
        let (clouds, tenants) = (
            clouds.clone(),
            (0..TENANTS).map(|i| tenant(&env, i)).collect::<Vec<_>>(),
        );
        tokio::spawn(async move {
            for cloud in &tenants {
                create_through_outages(&clouds, cloud).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tokio::task::spawn_blocking(|| kill_and_restart("kube-apiserver"))
        .await
        .expect("API server restart");
    creating.await.expect("creating the tenants");
    tokio::task::spawn_blocking(|| kill_and_restart("etcd"))
        .await
        .expect("etcd restart");

    let selector = env.selector();
    eventually(&format!("{TENANTS} tenants Ready"), WAIT, || {
        let (clouds, selector) = (clouds.clone(), selector.clone());
        async move {
            let list = clouds
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            let ready = list
                .items
                .iter()
                .filter(|c| {
                    c.status.as_ref().is_some_and(|s| {
                        s.observed_generation == c.metadata.generation
                            && s.conditions
                                .iter()
                                .any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                })
                .count();
            (ready == TENANTS).then_some(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let made = namespaces
        .list_metadata(&ListParams::default().labels("govdc.io/owner-kind=DepartmentCloud"))
        .await
        .expect("namespaces")
        .items
        .into_iter()
        .filter(|n| {
            n.metadata
                .name
                .as_deref()
                .is_some_and(|name| name.starts_with(&format!("{}-", env.prefix)))
        })
        .count();
    assert_eq!(made, TENANTS * 2, "every environment's namespace, once");

    // The watches resumed: a new environment is made at once, not at the next resync.
    let changed = format!("{}-t00", env.prefix);
    let started = Instant::now();
    clouds
        .patch(
            &changed,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"environments": [{"name": "prod"}, {"name": "test"}, {"name": "dev"}]}})),
        )
        .await
        .expect("add an environment");
    eventually(
        "the new environment's namespace",
        Duration::from_secs(20),
        || {
            let namespaces = namespaces.clone();
            let name = format!("{changed}-dev");
            async move { namespaces.get_opt(&name).await.ok()?.map(|_| ()) }
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: the operator's watches did not resume\n{}",
            operator.logs()
        )
    });
    eprintln!(
        "a spec change after the restarts acted on in {:?}",
        started.elapsed()
    );
    assert!(
        operator.is_running() && operator.pid() == pid,
        "the operator had to restart:\n{}",
        operator.logs()
    );
}
