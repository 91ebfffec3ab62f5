//! Assignment's statistics and stability, and the registry's rules, on a real state store.

use super::*;

fn two_way(a: f64, b: f64) -> Experiment {
    Experiment {
        name: "e1".into(),
        description: String::new(),
        status: Status::Running,
        variants: vec![
            Variant {
                name: "a".into(),
                share: a,
                config: None,
            },
            Variant {
                name: "b".into(),
                share: b,
                config: None,
            },
        ],
        holdout: 1.0 - a - b,
        control: "a".into(),
        salt: "e1".into(),
        attribution_window_ms: DEFAULT_ATTRIBUTION_WINDOW_MS,
        id: 1,
        created_ms: 0,
        started_ms: Some(0),
        stopped_ms: None,
        updated_ms: 0,
    }
}

const USERS: usize = 100_000;

#[test]
fn a_fifty_fifty_split_of_100000_users_is_within_binomial_bounds() {
    let experiment = two_way(0.5, 0.5);
    let in_a = (0..USERS)
        .filter(|user| experiment.group_of(&format!("user-{user}")) == "a")
        .count() as f64;
    // 99.9% two-sided bounds of Binomial(100000, 0.5): ±3.29 standard deviations.
    let sd = (USERS as f64 * 0.25).sqrt();
    let gap = (in_a - USERS as f64 / 2.0).abs();
    assert!(
        gap <= 3.29 * sd,
        "{in_a} users in a: {gap} from half, sd {sd}"
    );
}

#[test]
fn changing_a_share_moves_only_the_users_it_must() {
    let before = two_way(0.5, 0.5);
    let after = two_way(0.4, 0.6);
    let mut moved = 0usize;
    for user in 0..USERS {
        let id = format!("user-{user}");
        let (old, new) = (before.group_of(&id), after.group_of(&id));
        if old != new {
            assert_eq!((old, new), ("a", "b"), "{id}: only a's surplus moves, to b");
            moved += 1;
        }
    }
    // A tenth of the users must move; the binomial 99.9% bounds again.
    let sd = (USERS as f64 * 0.1 * 0.9).sqrt();
    assert!(
        (moved as f64 - 10_000.0).abs() <= 3.29 * sd,
        "{moved} moved"
    );
}

#[test]
fn a_holdout_keeps_its_share_out_of_every_variant() {
    let experiment = two_way(0.45, 0.45);
    let held = (0..USERS)
        .filter(|user| experiment.group_of(&format!("user-{user}")) == HOLDOUT)
        .count() as f64;
    let sd = (USERS as f64 * 0.1 * 0.9).sqrt();
    assert!((held - 10_000.0).abs() <= 3.29 * sd, "{held} held out");
}

#[test]
fn raising_a_rollout_keeps_those_already_on() {
    let mut flag = Flag {
        name: "f".into(),
        description: String::new(),
        enabled: true,
        rollout_percent: 10.0,
        allow: vec!["vip".into()],
        config: None,
        salt: "f".into(),
        updated_ms: 0,
    };
    let users: Vec<String> = (0..10_000).map(|user| format!("user-{user}")).collect();
    let on_at_10: Vec<&String> = users.iter().filter(|user| flag.is_on(user)).collect();
    flag.rollout_percent = 20.0;
    assert!(on_at_10.iter().all(|user| flag.is_on(user)));
    let on_at_20 = users.iter().filter(|user| flag.is_on(user)).count();
    assert!((1_800..=2_200).contains(&on_at_20), "{on_at_20}");
    flag.rollout_percent = 0.0;
    assert!(flag.is_on("vip"), "the allow list is on at 0%");
    assert!(!users.iter().any(|user| flag.is_on(user)));
    flag.rollout_percent = 100.0;
    assert!(users.iter().all(|user| flag.is_on(user)));
    flag.enabled = false;
    assert!(
        !flag.is_on("vip") && !flag.is_on("user-1"),
        "the kill switch wins"
    );
}

fn registry(dir: &std::path::Path) -> Experiments {
    let store = StateStore::open(
        dir,
        &marquee_vector_store::StoreConfig {
            dimension: 8,
            dedup_window: std::time::Duration::from_secs(60),
            block_cache_bytes: 1 << 20,
            cipher: None,
        },
    )
    .unwrap();
    Experiments::open(store, [3; 32]).unwrap()
}

fn spec(name: &str, shares: &[f64]) -> ExperimentSpec {
    ExperimentSpec {
        name: name.into(),
        description: String::new(),
        status: Status::Running,
        variants: shares
            .iter()
            .enumerate()
            .map(|(at, share)| Variant {
                name: format!("v{at}"),
                share: *share,
                config: None,
            })
            .collect(),
        holdout: 0.0,
        control: None,
        salt: None,
        attribution_window_ms: None,
    }
}

#[test]
fn definitions_are_kept_by_the_store_and_refused_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    {
        let experiments = registry(dir.path());
        let created = experiments.create(spec("e1", &[0.5, 0.5])).unwrap();
        assert_eq!(created.control, "v0");
        assert_eq!(created.salt, "e1");
        let field = |error: Error| match error {
            Error::Invalid(error) => error.field,
            other => panic!("{other}"),
        };
        assert_eq!(
            field(experiments.create(spec("e1", &[1.0])).unwrap_err()),
            "name"
        );
        assert_eq!(
            field(experiments.create(spec("e2", &[0.5, 0.4])).unwrap_err()),
            "variants"
        );
        assert_eq!(
            field(experiments.create(spec("e 2", &[1.0])).unwrap_err()),
            "name"
        );
        let mut doubled = spec("e2", &[0.5, 0.5]);
        doubled.variants[1].name = "v0".into();
        assert_eq!(
            field(experiments.create(doubled).unwrap_err()),
            "variants[1].name"
        );
        let mut back = spec("e1", &[0.5, 0.5]);
        back.status = Status::Draft;
        assert_eq!(
            field(experiments.replace("e1", back).unwrap_err()),
            "status"
        );
        let changed = experiments.replace("e1", spec("e1", &[0.4, 0.6])).unwrap();
        assert_eq!(
            (changed.id, changed.started_ms),
            (created.id, created.started_ms)
        );
    }
    let experiments = registry(dir.path());
    let definitions = experiments.definitions();
    let kept = definitions.experiment("e1").expect("kept across a reopen");
    assert_eq!(kept.variants[0].share, 0.4);
    experiments.delete("e1").unwrap();
    assert!(matches!(experiments.delete("e1"), Err(Error::NotFound(_))));
}

#[test]
fn an_earlier_experiment_s_settings_win_and_flags_override_both() {
    let dir = tempfile::tempdir().unwrap();
    let experiments = registry(dir.path());
    let popular = RankingSettings {
        strategy: Some(ListStrategy::Popular),
        ..RankingSettings::default()
    };
    let weighted = RankingSettings {
        strategy: Some(ListStrategy::Personalised),
        embedding_weight: Some(0.5),
        ..RankingSettings::default()
    };
    let mut first = spec("first", &[1.0]);
    first.variants[0].config = Some(popular.clone());
    experiments.create(first).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    let mut second = spec("second", &[1.0]);
    second.variants[0].config = Some(weighted);
    experiments.create(second).unwrap();
    let assignment = experiments.assign("u1");
    assert_eq!(
        assignment.groups,
        [
            ("first".into(), "v0".into()),
            ("second".into(), "v0".into())
        ]
    );
    assert_eq!(assignment.settings.strategy, Some(ListStrategy::Popular));
    assert_eq!(assignment.settings.embedding_weight, Some(0.5));
    experiments
        .put_flag(
            FlagSpec {
                name: "personal".into(),
                description: String::new(),
                enabled: true,
                rollout_percent: 100.0,
                allow: Vec::new(),
                config: Some(RankingSettings {
                    strategy: Some(ListStrategy::Personalised),
                    ..RankingSettings::default()
                }),
                salt: None,
            },
            true,
        )
        .unwrap();
    let assignment = experiments.assign("u1");
    assert_eq!(assignment.flags, ["personal"]);
    assert_eq!(
        assignment.settings.strategy,
        Some(ListStrategy::Personalised)
    );
}
