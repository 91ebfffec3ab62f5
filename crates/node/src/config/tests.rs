//! Tests of the configuration layers and of the example file.

use super::*;

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("marquee.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn resolve(settings: Settings, overrides: Overrides) -> Result<NodeConfig> {
    let mut settings = settings;
    settings.apply(overrides);
    settings.resolve()
}

fn error_of(settings: Settings, overrides: Overrides) -> String {
    resolve(settings, overrides).unwrap_err().to_string()
}

#[test]
fn cors_origins_come_from_the_file_or_the_flag_and_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "[cors]\nallowed_origins = [\"https://app.example.com\"]\n",
    );
    let file = Settings::from_file(&path).unwrap();
    let from_file = resolve(file.clone(), Overrides::default()).unwrap();
    assert_eq!(from_file.cors_origins, ["https://app.example.com"]);
    let flagged = Overrides {
        cors_origins: vec!["http://localhost:5173".into()],
        ..Overrides::default()
    };
    assert_eq!(
        resolve(file.clone(), flagged).unwrap().cors_origins,
        ["http://localhost:5173"]
    );
    let bad = Overrides {
        cors_origins: vec!["https://app.example.com/".into()],
        ..Overrides::default()
    };
    let error = error_of(file, bad);
    assert!(error.starts_with("cors.allowed_origins:"), "{error}");
}

#[test]
fn flags_override_the_file_which_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "partitions = 8\nlisten = \"127.0.0.1:9000\"\n[model]\ndimension = 16\n",
    );
    let overrides = Overrides {
        partitions: Some(2),
        ..Overrides::default()
    };
    let config = resolve(Settings::from_file(&path).unwrap(), overrides).unwrap();
    assert_eq!(config.partitions, 2);
    assert_eq!(config.listen.port(), 9000);
    assert_eq!(config.model.dimension, 16);
    assert_eq!(config.data_dir, PathBuf::from("./data"));
}

#[test]
fn the_index_builds_niceness_comes_from_the_file_and_is_checked() {
    let defaults = Settings::default().resolve().unwrap();
    assert_eq!(defaults.index.background_nice, 19);
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "[index]\nbackground_nice = 10\n");
    let config = Settings::from_file(&path).unwrap().resolve().unwrap();
    assert_eq!(config.index.background_nice, 10);
    let path = write(&dir, "[index]\nbackground_nice = 20\n");
    let error = Settings::from_file(&path)
        .unwrap()
        .resolve()
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("index.background_nice:"), "{error}");
}

#[test]
fn the_graphs_settings_come_from_the_file_and_each_refusal_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "[index]\nmax_connections = 24\nef_construction = 200\nef_search = 64\n",
    );
    let config = Settings::from_file(&path).unwrap().resolve().unwrap();
    assert_eq!(
        (
            config.index.max_connections,
            config.index.ef_construction,
            config.index.ef_search
        ),
        (24, 200, 64)
    );
    for (text, key) in [
        ("max_connections = 1", "index.max_connections:"),
        ("max_connections = 1000", "index.max_connections:"),
        ("ef_construction = 8", "index.ef_construction:"),
        ("ef_search = 0", "index.ef_search:"),
    ] {
        let error = refusal(&dir, &format!("[index]\n{text}\n"));
        assert!(error.starts_with(key), "{text}: {error}");
    }
}

/// The refusal of a file holding `text`, which parses but does not resolve.
fn refusal(dir: &tempfile::TempDir, text: &str) -> String {
    let path = write(dir, text);
    Settings::from_file(&path)
        .unwrap()
        .resolve()
        .unwrap_err()
        .to_string()
}

#[test]
fn an_oidc_issuer_comes_from_the_file_and_each_refusal_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let section = "[oidc]\nissuer = \"https://id.example.com\"\naudience = \"marquee\"\n";
    let path = write(
        &dir,
        &format!("{section}jwks_url = \"https://id.example.com/certs\"\n"),
    );
    let oidc = Settings::from_file(&path)
        .unwrap()
        .resolve()
        .unwrap()
        .oidc
        .unwrap();
    assert_eq!(oidc.scopes_claim, "scope");
    assert_eq!(oidc.leeway_secs, 30);
    for (text, key) in [
        (
            "jwks_url = \"ftp://id.example.com/certs\"",
            "oidc.jwks_url:",
        ),
        (
            "jwks_url = \"https://id.example.com/certs\"\nleeway_secs = 3600",
            "oidc.leeway_secs:",
        ),
    ] {
        let error = refusal(&dir, &format!("{section}{text}\n"));
        assert!(error.starts_with(key), "{text}: {error}");
    }
    let path = write(&dir, "[oidc]\nissuer = \"x\"\naudience = \"y\"\n");
    let error = Settings::from_file(&path).unwrap_err().to_string();
    assert!(error.contains("jwks_url"), "{error}");
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "partitons = 8\n");
    let error = Settings::from_file(&path).unwrap_err().to_string();
    assert!(error.contains("partitons"), "{error}");
    let path = write(&dir, "[index]\nside_set = 8\n");
    let error = Settings::from_file(&path).unwrap_err().to_string();
    assert!(error.contains("side_set"), "{error}");
}

#[test]
fn the_log_backend_comes_from_the_file_or_the_flags_and_is_checked() {
    let embedded = Settings::default().resolve().unwrap();
    assert_eq!(embedded.log, LogBackend::Embedded);

    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "[log]\nbackend = \"fluvio\"\nfluvio_endpoint = \"10.0.0.5:9003\"\nfluvio_replication = 3\n",
    );
    let file = Settings::from_file(&path).unwrap();
    assert_eq!(
        file.clone().resolve().unwrap().log,
        LogBackend::Fluvio {
            endpoint: "10.0.0.5:9003".into(),
            topic: "marquee-events".into(),
            replication: 3,
        }
    );
    let flagged = Overrides {
        fluvio_endpoint: Some("127.0.0.1:9103".into()),
        fluvio_topic: Some("events-eu".into()),
        ..Overrides::default()
    };
    let LogBackend::Fluvio {
        endpoint, topic, ..
    } = resolve(file.clone(), flagged.clone()).unwrap().log
    else {
        panic!("the file chose fluvio");
    };
    assert_eq!(
        (endpoint.as_str(), topic.as_str()),
        ("127.0.0.1:9103", "events-eu")
    );
    let embedded = Overrides {
        log: Some(LogKind::Embedded),
        ..flagged
    };
    assert_eq!(resolve(file, embedded).unwrap().log, LogBackend::Embedded);

    let missing = Overrides {
        log: Some(LogKind::Fluvio),
        ..Overrides::default()
    };
    let error = error_of(Settings::default(), missing.clone());
    assert!(
        error.starts_with("log.fluvio_endpoint: required"),
        "{error}"
    );
    let no_port = Overrides {
        fluvio_endpoint: Some("no-port".into()),
        ..missing.clone()
    };
    let error = error_of(Settings::default(), no_port);
    assert!(
        error.starts_with("log.fluvio_endpoint: must be HOST:PORT"),
        "{error}"
    );
    let bad_topic = Overrides {
        fluvio_endpoint: Some("127.0.0.1:9003".into()),
        fluvio_topic: Some("Events!".into()),
        ..missing
    };
    let error = error_of(Settings::default(), bad_topic);
    assert!(error.starts_with("log.fluvio_topic:"), "{error}");
}

#[test]
fn a_nodes_partitions_come_from_the_file_or_the_flag_and_are_checked() {
    assert_eq!(Settings::default().resolve().unwrap().cluster, None);
    assert_eq!(parse_partition_list("0-3, 6,5"), Ok(vec![0, 1, 2, 3, 5, 6]));
    assert!(parse_partition_list("3-1").unwrap_err().contains("empty"));
    assert!(parse_partition_list("a").unwrap_err().contains("\"a\""));

    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "partitions = 8\n[log]\nbackend = \"fluvio\"\nfluvio_endpoint = \"10.0.0.5:9003\"\n\
         [cluster]\npartitions = \"0-3\"\n\
         peers = [{ address = \"http://10.0.0.6:8080\", partitions = \"4-7\" }]\n",
    );
    let file = Settings::from_file(&path).unwrap();
    assert_eq!(
        file.clone().resolve().unwrap().cluster,
        Some(ClusterConfig {
            partitions: vec![0, 1, 2, 3],
            changes_topic: "marquee-item-deltas".into(),
            peers: vec![("http://10.0.0.6:8080".into(), vec![4, 5, 6, 7])],
            forward: true,
        })
    );
    let owned = |spec: &str| Overrides {
        owned_partitions: Some(spec.into()),
        ..Overrides::default()
    };
    let error = error_of(file.clone(), owned("4-5"));
    assert!(
        error.starts_with("cluster.peers (http://10.0.0.6:8080): partition 4 is this node's"),
        "{error}"
    );
    let error = error_of(file.clone(), owned("2,9"));
    assert!(
        error.starts_with("cluster.partitions: partition 9 does not exist"),
        "{error}"
    );
    let error = error_of(file.clone(), owned("2-"));
    assert!(error.starts_with("cluster.partitions:"), "{error}");

    // One list of every node for the whole cluster: the entry with this node's partitions is
    // this node; one that only overlaps them is still refused.
    let mut shared = file.clone();
    shared.cluster.peers.push(PeerSettings {
        address: "http://10.0.0.5:8080".into(),
        partitions: "0-3".into(),
    });
    let peers = shared.resolve().unwrap().cluster.unwrap().peers;
    assert_eq!(
        peers,
        vec![("http://10.0.0.6:8080".into(), vec![4, 5, 6, 7])]
    );
    let mut overlapping = file.clone();
    overlapping.cluster.peers.push(PeerSettings {
        address: "http://10.0.0.5:8080".into(),
        partitions: "2-3".into(),
    });
    let error = error_of(overlapping, Overrides::default());
    assert!(error.contains("partition 2 is this node's"), "{error}");

    // The embedded log is one machine's.
    let error = error_of(Settings::default(), owned("0-1"));
    assert!(
        error.starts_with("cluster.partitions: nodes split the partitions of a Fluvio topic only"),
        "{error}"
    );
}

/// The example file shipped with the project: every key, with its default.
const EXAMPLE: &str = include_str!("../../../../config/marquee.example.toml");

/// Every key path of a TOML table (`index.background_nice`), tables themselves included.
fn key_paths(table: &toml::Table, prefix: &str, paths: &mut Vec<String>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        if let toml::Value::Table(inner) = value {
            key_paths(inner, &format!("{path}."), paths);
        }
        paths.push(path);
    }
}

/// Whether a commented line is a setting shown without a default (`# key = value`) or its
/// table's header (`# [tls]`), rather than prose.
fn is_commented_setting(line: &str) -> bool {
    let is_key = |key: &str| key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    (line.starts_with('[') && line.ends_with(']'))
        || line.split_once(" = ").is_some_and(|(key, _)| is_key(key))
}

/// The example with its commented-out settings taken in.
fn example_with_optional_keys() -> String {
    EXAMPLE
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(setting) if is_commented_setting(setting) => setting,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_file_holds_the_defaults() {
    let parsed: Settings = toml::from_str(EXAMPLE).expect("the example parses");
    assert_eq!(parsed, Settings::default());
}

#[test]
fn the_example_file_names_every_key_and_only_keys_the_code_reads() {
    // Every key, an optional one (no default) included: the defaults with each option set.
    let mut every = Settings {
        processor_workers: Some(2),
        ..Settings::default()
    };
    every.log.fluvio_endpoint = Some("127.0.0.1:9003".into());
    every.cluster.partitions = Some("0-3".into());
    every.cluster.peers = vec![PeerSettings {
        address: "http://10.0.0.2:8080".into(),
        partitions: "4-7".into(),
    }];
    every.tls = Some(TlsFiles {
        cert: "/etc/marquee/cert.pem".into(),
        key: "/etc/marquee/key.pem".into(),
    });
    let code: toml::Table = toml::Table::try_from(&every).unwrap();
    let mut code_keys = Vec::new();
    key_paths(&code, "", &mut code_keys);
    let full = example_with_optional_keys();
    let documented: toml::Table =
        toml::from_str(&full).expect("the example with its options parses");
    let mut documented_keys = Vec::new();
    key_paths(&documented, "", &mut documented_keys);
    let missing: Vec<&String> = code_keys
        .iter()
        .filter(|key| !documented_keys.contains(key))
        .collect();
    assert!(
        missing.is_empty(),
        "keys missing from the example: {missing:?}"
    );
    // And every key it documents is one the code reads (unknown keys are refused).
    let _: Settings = toml::from_str(&full).expect("every documented key is read");
}

#[test]
fn an_encryption_key_comes_from_a_private_file_outside_the_data_directory_or_the_environment() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = marquee_schemas::Cipher::generate_hex().unwrap();
    let key_file = dir.path().join("data.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let data_dir = dir.path().join("data");
    let section = |file: &Path| {
        format!(
            "data_dir = {:?}\n[storage]\nencryption_key_file = {:?}\n",
            data_dir.display().to_string(),
            file.display().to_string()
        )
    };
    let path = write(&dir, &section(&key_file));
    let config = Settings::from_file(&path).unwrap().resolve().unwrap();
    assert!(config.cipher.is_some());
    assert!(
        NodeConfig::new(&data_dir, "127.0.0.1:0".parse().unwrap())
            .cipher
            .is_none()
    );

    // Readable by others, inside the data directory, not a key, missing: each named.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = refusal(&dir, &section(&key_file));
    assert!(
        error.starts_with("storage.encryption_key_file: "),
        "{error}"
    );
    assert!(error.contains("chmod 600"), "{error}");
    std::fs::create_dir_all(&data_dir).unwrap();
    let inside = data_dir.join("data.key");
    std::fs::write(&inside, &key).unwrap();
    std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o600)).unwrap();
    let error = refusal(&dir, &section(&inside));
    assert!(error.contains("inside data_dir"), "{error}");
    let short = dir.path().join("short.key");
    std::fs::write(&short, "abcd").unwrap();
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    let error = refusal(&dir, &section(&short));
    assert!(error.contains("64 hexadecimal digits"), "{error}");
    let error = refusal(&dir, &section(&dir.path().join("absent.key")));
    assert!(error.contains("cannot read"), "{error}");

    // The environment's key (MARQUEE_ENCRYPTION_KEY), alone or beside the file.
    let from_env = |settings: &mut Settings, hex: &str| {
        settings.apply(Overrides {
            encryption_key: Some(SecretKey(hex.to_owned())),
            ..Overrides::default()
        });
    };
    let mut settings = Settings::default();
    from_env(&mut settings, &key);
    assert!(settings.clone().resolve().unwrap().cipher.is_some());
    assert!(
        !format!("{settings:?}").contains(&key),
        "the key is never printed"
    );
    from_env(&mut settings, "zz");
    let error = settings.resolve().unwrap_err().to_string();
    assert!(error.starts_with("MARQUEE_ENCRYPTION_KEY: "), "{error}");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut settings = Settings::from_file(&write(&dir, &section(&key_file))).unwrap();
    from_env(&mut settings, &key);
    let error = settings.resolve().unwrap_err().to_string();
    assert!(error.contains("not both"), "{error}");
}
