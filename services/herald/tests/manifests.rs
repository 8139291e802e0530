//! The Kubernetes manifests under deploy/k8s/base agree with the binary: the
//! subcommands and channels they run, the settings they name, the ports and
//! probes they use, and the consumer groups and topics KEDA watches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::Value;

const SUBCOMMANDS: &[&str] = &["serve", "api", "router", "workers", "receipts", "migrate"];
const CHANNELS: &[&str] = &["email", "push", "sms", "in_app"];
/// Read by `herald` outside `Config`: the config file's path and the log filter.
const OTHER_KEYS: &[&str] = &["HERALD_CONFIG", "HERALD_LOG"];

static NULL: Value = Value::Null;

/// `v` at a dotted path of keys and indexes; Null where it is missing.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, key| {
        let next = match key.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(key),
        };
        next.unwrap_or(&NULL)
    })
}

fn text<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path).as_str().unwrap_or_default()
}

fn list<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    at(v, path).as_sequence().map_or(&[], |s| s.as_slice())
}

fn strings(v: &Value) -> BTreeMap<String, String> {
    let entries = v.as_mapping().into_iter().flatten();
    entries
        .map(|(k, v)| match (k.as_str(), v.as_str()) {
            (Some(k), Some(v)) => (k.to_owned(), v.to_owned()),
            _ => panic!("{k:?}: {v:?} must be a string (quote numbers in YAML)"),
        })
        .collect()
}

struct Doc {
    file: String,
    v: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        text(&self.v, "kind")
    }
    fn name(&self) -> &str {
        text(&self.v, "metadata.name")
    }
    fn what(&self) -> String {
        format!("{} {} ({})", self.kind(), self.name(), self.file)
    }
    fn containers(&self) -> &[Value] {
        list(&self.v, "spec.template.spec.containers")
    }
    /// The Herald container: the first.
    fn container(&self) -> &Value {
        let first = self.containers().first();
        first.unwrap_or_else(|| panic!("{} has no container", self.what()))
    }
    fn args(&self) -> Vec<&str> {
        let args = list(self.container(), "args").iter();
        args.map(|a| a.as_str().unwrap_or_default()).collect()
    }
}

struct Manifests {
    kustomization: Value,
    docs: Vec<Doc>,
    files: BTreeSet<String>,
}

impl Manifests {
    fn load() -> Manifests {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s/base");
        let (mut files, mut docs) = (BTreeSet::new(), Vec::new());
        for entry in std::fs::read_dir(&dir).expect("deploy/k8s/base") {
            let file = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !(file.ends_with(".yaml") || file.ends_with(".yml")) {
                continue;
            }
            let source = std::fs::read_to_string(dir.join(&file)).unwrap();
            for document in serde_yaml::Deserializer::from_str(&source) {
                let v = Value::deserialize(document)
                    .unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"));
                if !v.is_null() {
                    docs.push(Doc {
                        file: file.clone(),
                        v,
                    });
                }
            }
            files.insert(file);
        }
        let kustomization = docs.iter().position(|d| d.kind() == "Kustomization");
        let kustomization = docs.remove(kustomization.expect("a kustomization.yaml")).v;
        Manifests {
            kustomization,
            docs,
            files,
        }
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Doc> {
        self.docs.iter().filter(move |d| d.kind() == kind)
    }

    fn one(&self, kind: &str, name: &str) -> &Doc {
        let mut docs = self.docs.iter();
        let found = docs.find(|d| d.kind() == kind && d.name() == name);
        found.unwrap_or_else(|| panic!("no {kind} named {name} in deploy/k8s/base"))
    }

    /// Deployments and Jobs: everything that runs the image.
    fn workloads(&self) -> impl Iterator<Item = &Doc> {
        self.of_kind("Deployment").chain(self.of_kind("Job"))
    }

    fn config_map(&self) -> BTreeMap<String, String> {
        strings(at(&self.one("ConfigMap", "herald-config").v, "data"))
    }

    fn secret(&self) -> BTreeMap<String, String> {
        let secret = &self.one("Secret", "herald-secrets").v;
        let mut keys = strings(at(secret, "stringData"));
        keys.extend(strings(at(secret, "data")));
        keys
    }

    /// The ConfigMap, the Secret template's (dummy) values and `env` overrides.
    fn settings(&self, env: &[Value]) -> BTreeMap<String, String> {
        let mut values = self.config_map();
        values.extend(self.secret());
        for var in env.iter().filter(|v| !at(v, "value").is_null()) {
            values.insert(text(var, "name").to_owned(), text(var, "value").to_owned());
        }
        values
    }

    /// The binary's own reading of the ConfigMap and the Secret.
    fn config(&self) -> herald::Config {
        herald::Config::from_map(&self.settings(&[]))
            .unwrap_or_else(|e| panic!("herald refuses the ConfigMap and Secret: {e}"))
    }
}

/// The values of `--channel x`, `--channel=x` and `--channel x,y`.
fn channels(args: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        let value = match arg.strip_prefix("--channel") {
            Some("") => args.get(i + 1).copied().unwrap_or_default(),
            Some(rest) => rest.strip_prefix('=').unwrap_or(rest),
            None => continue,
        };
        found.extend(value.split(',').map(|c| c.trim().to_owned()));
    }
    found
}

#[test]
fn the_kustomization_lists_exactly_the_yaml_files_in_the_base() {
    let m = Manifests::load();
    let resources = list(&m.kustomization, "resources").iter();
    let listed: BTreeSet<String> = resources.map(|r| r.as_str().unwrap().to_owned()).collect();
    let mut present = m.files.clone();
    present.remove("kustomization.yaml");
    let missing: Vec<_> = listed.difference(&present).collect();
    let unlisted: Vec<_> = present.difference(&listed).collect();
    let why = format!("kustomization.yaml lists missing files {missing:?}, omits {unlisted:?}");
    assert!(missing.is_empty() && unlisted.is_empty(), "{why}");
}

#[test]
fn every_container_runs_the_image_the_kustomization_names() {
    let m = Manifests::load();
    let images = list(&m.kustomization, "images");
    assert_eq!(images.len(), 1, "the kustomization names one image");
    for doc in m.workloads() {
        for c in doc.containers() {
            assert_eq!(text(c, "image"), text(&images[0], "name"), "{}", doc.what());
            let why = format!("{}: pass args to /app/herald, no command", doc.what());
            assert!(at(c, "command").is_null(), "{why}");
        }
    }
}

#[test]
fn every_container_runs_a_real_subcommand_with_valid_channels() {
    let m = Manifests::load();
    for doc in m.workloads() {
        let args = doc.args();
        let command = args.first().copied().unwrap_or_default();
        let what = doc.what();
        let why = format!("{what} runs {command:?}, not one of {SUBCOMMANDS:?}");
        assert!(SUBCOMMANDS.contains(&command), "{why}");
        // A Deployment runs a long-running role; `migrate` exits, so it is a Job.
        let why = format!("{what} runs `{command}`");
        assert_eq!(doc.kind() == "Deployment", command != "migrate", "{why}");
        for channel in channels(&args) {
            let why = format!("{what}: --channel {channel:?} is not one of {CHANNELS:?}");
            assert!(CHANNELS.contains(&channel.as_str()), "{why}");
        }
    }
}

#[test]
fn every_deployment_probes_readyz_and_healthz_on_the_http_port_of_herald_listen() {
    let m = Manifests::load();
    let port = m.config().listen.port();
    for doc in m.of_kind("Deployment") {
        let (c, what) = (doc.container(), doc.what());
        let http = list(c, "ports").iter().find(|p| text(p, "name") == "http");
        let http = http.unwrap_or_else(|| panic!("{what} has no port named http"));
        let why = format!("{what}: containerPort must be the port of HERALD_LISTEN");
        let container_port = at(http, "containerPort").as_u64();
        assert_eq!(container_port, Some(port.into()), "{why}");
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = at(c, &format!("{probe}.httpGet"));
            assert_eq!(text(get, "path"), path, "{what} {probe}");
            assert_eq!(text(get, "port"), "http", "{what} {probe}");
        }
        let annotations = strings(at(&doc.v, "spec.template.metadata.annotations"));
        let why = format!("{what}: Prometheus scrapes /metrics on the http port");
        let scraped = annotations.get("prometheus.io/port");
        assert_eq!(scraped, Some(&port.to_string()), "{why}");
    }
}

#[test]
fn every_herald_setting_named_anywhere_is_one_the_binary_reads() {
    let m = Manifests::load();
    let mut named: Vec<(String, String)> = Vec::new();
    for key in m.config_map().into_keys() {
        named.push((key, "ConfigMap herald-config".into()));
    }
    for (key, value) in m.secret() {
        let why = format!("secret.yaml is a template: {key} must hold REPLACE_ME placeholders");
        assert!(value.contains("REPLACE_ME"), "{why}");
        named.push((key, "Secret herald-secrets".into()));
    }
    for doc in m.workloads() {
        for var in doc.containers().iter().flat_map(|c| list(c, "env")) {
            named.push((text(var, "name").to_owned(), doc.what()));
        }
    }
    for (key, place) in named {
        let known = herald::config::KEYS.contains(&key.as_str()) || OTHER_KEYS.contains(&&*key);
        let why = format!("{place} sets {key}, which herald does not read");
        assert!(known || !key.starts_with("HERALD_"), "{why}");
    }
}

#[test]
fn every_long_running_deployment_gets_api_keys_from_the_secret_as_it_listens_beyond_loopback() {
    let m = Manifests::load();
    let (listen, secret) = (m.config().listen, m.secret());
    assert!(!listen.ip().is_loopback(), "pods listen beyond loopback");
    let keys = secret.contains_key("HERALD_API_KEYS");
    assert!(keys, "the Secret must hold HERALD_API_KEYS");
    for doc in m.of_kind("Deployment") {
        let (c, what) = (doc.container(), doc.what());
        let env_from = list(c, "envFrom");
        let from = |kind: &str, name: &str| env_from.iter().any(|e| text(e, kind) == name);
        let config = from("configMapRef.name", "herald-config");
        assert!(config, "{what} needs envFrom herald-config");
        let why = format!("{what} listens on {listen}: it needs envFrom herald-secrets");
        assert!(from("secretRef.name", "herald-secrets"), "{why}");
        let env = list(c, "env");
        let overridden = env.iter().any(|e| text(e, "name") == "HERALD_API_KEYS");
        assert!(!overridden, "{what}: HERALD_API_KEYS comes from the Secret");
    }
}

#[test]
fn every_workload_requests_resources_and_can_write_its_data_dir() {
    let m = Manifests::load();
    let data_dir = m.config().data_dir.display().to_string();
    for doc in m.workloads() {
        for c in doc.containers() {
            for path in ["requests.cpu", "requests.memory", "limits.memory"] {
                let set = !at(c, &format!("resources.{path}")).is_null();
                assert!(set, "{} sets no resources.{path}", doc.what());
            }
            if at(c, "securityContext.readOnlyRootFilesystem").as_bool() == Some(true) {
                let mounts = list(c, "volumeMounts");
                let writable = mounts.iter().any(|v| text(v, "mountPath") == data_dir);
                assert!(writable, "{}: mount a volume at {data_dir}", doc.what());
            }
        }
    }
}

#[test]
fn the_service_and_the_disruption_budget_select_only_the_api_pods() {
    let m = Manifests::load();
    let service = m.one("Service", "herald-api");
    let pdb = m.one("PodDisruptionBudget", "herald-api");
    for (what, selector) in [
        (service.what(), strings(at(&service.v, "spec.selector"))),
        (pdb.what(), strings(at(&pdb.v, "spec.selector.matchLabels"))),
    ] {
        assert!(!selector.is_empty(), "{what} has a selector");
        for doc in m.of_kind("Deployment") {
            let labels = strings(at(&doc.v, "spec.template.metadata.labels"));
            let selected = selector.iter().all(|(k, v)| labels.get(k) == Some(v));
            let api = doc.args() == ["api"];
            let why = format!("{what} must select the api pods only; {}", doc.what());
            assert_eq!(selected, api, "{why}");
        }
    }
    for port in list(&service.v, "spec.ports") {
        assert_eq!(text(port, "targetPort"), "http", "{}", service.what());
    }
}

#[test]
fn each_autoscaler_scales_an_existing_deployment_and_keda_watches_its_group_and_topic() {
    let m = Manifests::load();
    let (brokers, config) = (m.config_map()["HERALD_KAFKA_BROKERS"].clone(), m.config());
    let (prefix, partitions) = (&config.topic_prefix, config.kafka_partitions as u64);
    let mut scaled = BTreeSet::new();
    for hpa in m.of_kind("HorizontalPodAutoscaler") {
        let target = text(&hpa.v, "spec.scaleTargetRef.name");
        m.one("Deployment", target);
        assert!(scaled.insert(target), "two autoscalers scale {target}");
    }
    for so in m.of_kind("ScaledObject") {
        let what = so.what();
        assert_eq!(text(&so.v, "apiVersion"), "keda.sh/v1alpha1", "{what}");
        let target = text(&so.v, "spec.scaleTargetRef.name");
        let args = m.one("Deployment", target).args();
        assert!(scaled.insert(target), "two autoscalers scale {target}");
        let command = args.first().copied().unwrap_or_default();
        let (stage, topic) = match (command, channels(&args).as_slice()) {
            ("router", _) => ("router".to_owned(), "events".to_owned()),
            ("receipts", _) => ("receipts".to_owned(), "receipts".to_owned()),
            ("workers", [c]) => (format!("worker.{c}"), format!("deliveries.{c}")),
            _ => panic!("{what}: {target} runs {args:?}, which is not one consumer group"),
        };
        let triggers = list(&so.v, "spec.triggers");
        assert_eq!(triggers.len(), 1, "{what} has one trigger");
        assert_eq!(text(&triggers[0], "type"), "kafka", "{what}");
        let meta = strings(at(&triggers[0], "metadata"));
        let field = |key: &str| meta.get(key).cloned().unwrap_or_default();
        let why = format!("{what}: bootstrapServers must be HERALD_KAFKA_BROKERS");
        assert_eq!(field("bootstrapServers"), brokers, "{why}");
        assert_eq!(field("consumerGroup"), format!("{prefix}{stage}"), "{what}");
        assert_eq!(field("topic"), format!("{prefix}{topic}"), "{what}");
        let lag = field("lagThreshold").parse::<u64>();
        assert!(lag.is_ok_and(|n| n > 0), "{what} needs a lagThreshold");
        let min = at(&so.v, "spec.minReplicaCount").as_u64().unwrap_or(0);
        let max = at(&so.v, "spec.maxReplicaCount").as_u64();
        let max = max.unwrap_or(u64::MAX);
        assert!(min >= 1, "{what}: minReplicaCount at least 1");
        let why = format!("{what}: maxReplicaCount {max} outside {min}..={partitions} partitions");
        assert!(min <= max && max <= partitions, "{why}");
    }
}

#[test]
fn the_migrate_job_runs_migrate_and_stops() {
    let m = Manifests::load();
    let job = m.one("Job", "herald-migrate");
    assert_eq!(job.args(), ["migrate"], "{}", job.what());
    let restart = text(&job.v, "spec.template.spec.restartPolicy");
    let stops = matches!(restart, "OnFailure" | "Never");
    assert!(stops, "herald-migrate: restartPolicy OnFailure or Never");
    let limited = at(&job.v, "spec.backoffLimit").as_u64().is_some();
    assert!(limited, "herald-migrate needs a backoffLimit");
}

#[test]
fn the_binary_accepts_the_config_map_with_the_secret_and_every_override() {
    let m = Manifests::load();
    let config = m.config();
    let postgres = config.database_url.starts_with("postgres://");
    assert!(postgres, "production runs on PostgreSQL");
    assert!(config.kafka_brokers.is_some(), "production runs on Kafka");
    assert!(config.redis_url.is_some(), "replicas share claims in Redis");
    let json = config.log_format == herald::config::LogFormat::Json;
    assert!(json, "HERALD_LOG_FORMAT=json, for a log collector");
    let baked = config.templates_dir == std::path::Path::new("/app/templates");
    assert!(baked, "HERALD_TEMPLATES_DIR is the image's /app/templates");
    for doc in m.workloads() {
        for c in doc.containers() {
            if let Err(e) = herald::Config::from_map(&m.settings(list(c, "env"))) {
                panic!("{}: herald refuses its settings: {e}", doc.what());
            }
        }
    }
}
