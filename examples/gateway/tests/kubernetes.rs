//! deploy/kubernetes/ checked against the code: the ports, paths and timeouts the manifests
//! name are read from the gateway's own configuration (`Config::from_toml` over the ConfigMap,
//! the defaults for what it leaves out), the shard arguments are accepted by the real binary and
//! give each shard its symbols, and the readiness probe's path is one the metrics endpoint serves.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gateway::app::RunningGateway;
use gateway::config::{Config, DEFAULT_LISTEN};
use gateway::shard::{ShardId, ShardPlan, termination_grace_period};
use serde::Deserialize;
use serde_yaml::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// Every document of every manifest kustomization.yaml lists (and it lists every manifest).
fn documents() -> Vec<Value> {
    let dir = manifests_dir();
    let kustomization: Value = serde_yaml::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap()).unwrap();
    let listed: BTreeSet<String> = seq(&kustomization["resources"])
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed,
        present,
        "kustomization.yaml lists exactly the manifests in {}",
        dir.display()
    );
    let mut documents = Vec::new();
    for name in listed {
        let text = std::fs::read_to_string(dir.join(&name)).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            documents.push(Value::deserialize(document).unwrap_or_else(|err| panic!("{name}: {err}")));
        }
    }
    documents
}

fn seq(value: &Value) -> &Vec<Value> {
    value.as_sequence().unwrap_or_else(|| panic!("a list: {value:?}"))
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_else(|| panic!("a string: {value:?}"))
}

fn number(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("a number: {value:?}"))
}

/// The entry of a list of named things (`ports`, `volumes`, ...) called `name`.
fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    seq(list)
        .iter()
        .find(|item| item["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no entry named {name} in {list:?}"))
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|d| d["kind"].as_str() == Some(kind)).collect()
}

fn port(address: &str) -> u16 {
    address
        .parse::<SocketAddr>()
        .unwrap_or_else(|err| panic!("{address}: {err}"))
        .port()
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> &'a str {
    let at = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{flag} in {args:?}"));
    &args[at + 1]
}

/// The ConfigMap's gateway.toml, read by the gateway's own parser, and the ConfigMap's name.
fn base_config(documents: &[Value]) -> (Config, String, String) {
    let maps = of_kind(documents, "ConfigMap");
    assert_eq!(maps.len(), 1);
    let toml = text(&maps[0]["data"]["gateway.toml"]).to_owned();
    let config = Config::from_toml(&toml).expect("the ConfigMap's gateway.toml is a valid config");
    (config, text(&maps[0]["metadata"]["name"]).to_owned(), toml)
}

#[test]
fn the_manifests_match_the_gateways_ports_paths_and_timeouts() {
    let documents = documents();
    let (config, config_map, _) = base_config(&documents);
    let metrics = config.metrics.clone().expect("the shards serve metrics: readiness reads them");
    // The code's default ports, on every interface inside the pod.
    assert_eq!(port(&config.listen), port(DEFAULT_LISTEN));
    assert_eq!(port(&metrics), port(volley::metrics::DEFAULT_METRICS_ADDR));
    for address in [&config.listen, &metrics] {
        let ip = address.parse::<SocketAddr>().unwrap().ip();
        assert!(
            ip.is_unspecified(),
            "{address}: loopback would refuse the kubelet's probe and the clients"
        );
    }

    let services = of_kind(&documents, "Service");
    assert_eq!(services.len(), 1);
    let service = services[0];
    assert_eq!(text(&service["spec"]["clusterIP"]), "None", "a headless Service");
    assert_eq!(
        number(&named(&service["spec"]["ports"], "order-entry")["port"]),
        u64::from(port(&config.listen))
    );
    assert_eq!(
        number(&named(&service["spec"]["ports"], "metrics")["port"]),
        u64::from(port(&metrics))
    );

    let sets = of_kind(&documents, "StatefulSet");
    let plan = ShardPlan::new(&config.symbols, sets.len() as u32).expect("the symbols fill every shard");
    let mut shards = BTreeSet::new();
    for set in sets {
        let name = text(&set["metadata"]["name"]);
        let spec = &set["spec"];
        assert_eq!(text(&spec["serviceName"]), text(&service["metadata"]["name"]), "{name}");
        assert_eq!(number(&spec["replicas"]), 1, "{name}: one writer per journal");
        let pod = &spec["template"]["spec"];
        let labels = &spec["template"]["metadata"]["labels"];
        for (key, value) in service["spec"]["selector"].as_mapping().unwrap() {
            assert_eq!(&labels[key], value, "{name}: the Service selects the pod");
        }
        let containers = seq(&pod["containers"]);
        assert_eq!(containers.len(), 1);
        let container = &containers[0];
        let args: Vec<String> = seq(&container["args"]).iter().map(|a| text(a).to_owned()).collect();
        assert_eq!(args[0], "serve", "{name}");
        assert_eq!(flag(&args, "--shards").parse::<u32>().unwrap(), plan.shards(), "{name}");
        let shard = ShardId(flag(&args, "--shard").parse().unwrap());
        assert!(shards.insert(shard), "{name}: {shard} twice");
        let shard_config = plan.shard_config(&config, shard).unwrap();

        // Ports as the config says.
        let ports = &container["ports"];
        assert_eq!(
            number(&named(ports, "order-entry")["containerPort"]),
            u64::from(port(&config.listen))
        );
        assert_eq!(number(&named(ports, "metrics")["containerPort"]), u64::from(port(&metrics)));
        // Readiness from the metrics endpoint.
        let probe = &container["readinessProbe"]["httpGet"];
        assert_eq!(text(&probe["port"]), "metrics", "{name}");
        assert_eq!(text(&probe["path"]), "/metrics", "{name}");
        // The shutdown fits: drain, then the journal's flush, before SIGKILL.
        assert_eq!(
            Duration::from_secs(number(&pod["terminationGracePeriodSeconds"])),
            termination_grace_period(&shard_config),
            "{name}: terminationGracePeriodSeconds"
        );
        assert!(Duration::from_secs(number(&pod["terminationGracePeriodSeconds"])) > shard_config.drain_timeout);

        // The journal lives on the shard's own persistent volume; the config comes from the ConfigMap.
        let mounts = &container["volumeMounts"];
        let claim = &seq(&spec["volumeClaimTemplates"])[0];
        let claim_name = text(&claim["metadata"]["name"]);
        assert_eq!(seq(&claim["spec"]["accessModes"]), &[Value::from("ReadWriteOnce")]);
        let journal_dir = Path::new(text(&named(mounts, claim_name)["mountPath"]));
        assert_eq!(
            shard_config.journal.parent(),
            Some(journal_dir),
            "{name}: the journal is on the volume"
        );
        let config_volume = named(&pod["volumes"], "config");
        assert_eq!(text(&config_volume["configMap"]["name"]), config_map);
        let config_dir = Path::new(text(&named(mounts, "config")["mountPath"]));
        assert_eq!(Path::new(flag(&args, "--config")), config_dir.join("gateway.toml"), "{name}");
    }
    let every: BTreeSet<ShardId> = plan.shard_ids().collect();
    assert_eq!(shards, every, "one StatefulSet per shard");
}

#[test]
fn each_shards_arguments_give_the_real_binary_that_shards_configuration() {
    let documents = documents();
    let (config, _, toml) = base_config(&documents);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("gateway.toml");
    std::fs::write(&local, toml).unwrap();
    let sets = of_kind(&documents, "StatefulSet");
    let plan = ShardPlan::new(&config.symbols, sets.len() as u32).unwrap();
    for set in sets {
        let container = &seq(&set["spec"]["template"]["spec"]["containers"])[0];
        // The pod's own arguments, with `serve` turned into `config --print` and the ConfigMap's
        // path into the local copy.
        let mut args: Vec<String> = seq(&container["args"]).iter().map(|a| text(a).to_owned()).collect();
        assert_eq!(args.remove(0), "serve");
        let at = args.iter().position(|a| a == "--config").unwrap();
        args[at + 1] = local.display().to_string();
        let output = Command::new(env!("CARGO_BIN_EXE_volley-gateway"))
            .args(["config", "--print"])
            .args(&args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        let printed = Config::from_toml(&String::from_utf8(output.stdout).unwrap()).unwrap();
        let shard = ShardId(flag(&args, "--shard").parse().unwrap());
        assert_eq!(printed, plan.shard_config(&config, shard).unwrap(), "{shard}");
    }
}

/// The status line of `GET {path}` at `address`.
async fn status_line(address: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readiness_probe_gets_200_from_a_started_shard() {
    let documents = documents();
    let (config, _, _) = base_config(&documents);
    let sets = of_kind(&documents, "StatefulSet");
    let plan = ShardPlan::new(&config.symbols, sets.len() as u32).unwrap();
    let probe_path = text(&seq(&sets[0]["spec"]["template"]["spec"]["containers"])[0]["readinessProbe"]["httpGet"]["path"]).to_owned();
    let dir = tempfile::tempdir().unwrap();
    // The shard's config, on loopback and a scratch journal.
    let local = Config {
        listen: "127.0.0.1:0".into(),
        metrics: Some("127.0.0.1:0".into()),
        journal: dir.path().join("gateway.journal"),
        ..plan.shard_config(&config, ShardId(0)).unwrap()
    };
    let running = RunningGateway::start(&local).await.unwrap();
    let metrics = running.metrics_addr().unwrap();
    assert_eq!(status_line(metrics, &probe_path).await, "HTTP/1.1 200 OK");
    // The check means something: another path is not ready.
    assert!(status_line(metrics, "/healthz").await.contains("404"));
    running.shutdown().await.unwrap();
}
