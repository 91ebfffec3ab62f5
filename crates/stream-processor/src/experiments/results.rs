//! An experiment's results: per group, the rates with 95% intervals, the difference to the
//! control with its interval and p-value, and the sample-ratio check.
//!
//! The unit of assignment is the user, and one user sees many lists, so the lists of a user
//! are not independent trials. Each rate (clicked lists per list shown, and so on) is a ratio
//! of two per-user sums, and its variance is the delta method's over users:
//! `Var(Σy/Σx) ≈ (s²_y − 2R·s_xy + R²·s²_x) / (n·x̄²)`, which reduces to the binomial variance
//! when every user saw one list. Intervals are normal (±1.96 standard errors); the difference
//! of two groups is tested with a two-sided z-test (Welch-like: the variances are not pooled).
//! The sample-ratio check is Pearson's chi-square of the users counted per group (holdout
//! included) against the shares; p < 0.001 flags a mismatch — an assignment or logging bug
//! that makes the comparison untrustworthy. Peeking and many comparisons inflate false
//! positives: `docs/EXPERIMENTS.md` says how to read these figures.

use statrs::distribution::{ChiSquared, ContinuousCDF};

use super::definition::{Experiment, HOLDOUT};
use super::records::{POSITION_BUCKETS, UserRecord};

/// The normal quantile of a two-sided 95% interval.
const Z_95: f64 = 1.959_963_984_540_054;
/// The sample-ratio check's threshold.
pub const SRM_ALPHA: f64 = 0.001;

/// The per-user sums of one group.
#[derive(Debug, Clone, Default)]
pub struct GroupSums {
    pub users: u64,
    pub impressions: Moments,
    pub clicked: Moments,
    pub watched: Moments,
    pub positives: Moments,
    /// Σ impressions × outcome, per outcome (clicked, watched, positives).
    pub cross: [f64; 3],
    pub click_positions: Vec<u64>,
}

/// Σx and Σx² of a per-user count.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moments {
    pub sum: f64,
    pub squares: f64,
}

impl Moments {
    fn add(&mut self, value: u64) {
        let value = value as f64;
        self.sum += value;
        self.squares += value * value;
    }
}

impl GroupSums {
    pub fn add(&mut self, record: &UserRecord) {
        self.users += 1;
        self.impressions.add(record.impressions);
        self.clicked.add(record.clicked);
        self.watched.add(record.watched);
        self.positives.add(record.positives);
        let shown = record.impressions as f64;
        self.cross[0] += shown * record.clicked as f64;
        self.cross[1] += shown * record.watched as f64;
        self.cross[2] += shown * record.positives as f64;
        if self.click_positions.len() < POSITION_BUCKETS {
            self.click_positions.resize(POSITION_BUCKETS, 0);
        }
        for (bucket, count) in record.click_positions.iter().enumerate() {
            self.click_positions[bucket.min(POSITION_BUCKETS - 1)] += count;
        }
    }

    /// The ratio Σoutcome / Σimpressions and its delta-method variance; `None` with fewer than
    /// two users or no impression.
    fn ratio(&self, outcome: Moments, cross: f64) -> Option<(f64, f64)> {
        let n = self.users as f64;
        if self.users < 2 || self.impressions.sum == 0.0 {
            return None;
        }
        let ratio = outcome.sum / self.impressions.sum;
        let mean_x = self.impressions.sum / n;
        let var_x = (self.impressions.squares - n * mean_x * mean_x) / (n - 1.0);
        let mean_y = outcome.sum / n;
        let var_y = (outcome.squares - n * mean_y * mean_y) / (n - 1.0);
        let cov = (cross - n * mean_x * mean_y) / (n - 1.0);
        let variance =
            ((var_y - 2.0 * ratio * cov + ratio * ratio * var_x) / (n * mean_x * mean_x)).max(0.0);
        Some((ratio, variance))
    }
}

/// A rate and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

impl Estimate {
    fn of(value: f64, variance: f64) -> Estimate {
        let half = Z_95 * variance.sqrt();
        Estimate {
            value,
            low: value - half,
            high: value + half,
        }
    }
}

/// A group's rate against the control's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// This group's rate minus the control's, with its 95% interval.
    pub difference: Estimate,
    /// Two-sided, of the difference being 0.
    pub p_value: f64,
}

/// One metric of a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub estimate: Option<Estimate>,
    pub vs_control: Option<Comparison>,
}

/// One group's results.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupResult {
    pub name: String,
    /// Its share of the users.
    pub share: f64,
    pub users: u64,
    pub impressions: u64,
    pub clicked: u64,
    pub watched: u64,
    pub positives: u64,
    /// Lists clicked per list shown.
    pub click_through: Metric,
    /// Lists watched from per list shown.
    pub watch_through: Metric,
    /// Positive events per list shown.
    pub positives_per_impression: Metric,
    /// First clicks by position (the last entry holds every later position).
    pub click_positions: Vec<u64>,
}

/// The sample-ratio check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRatio {
    pub chi_square: f64,
    pub degrees_of_freedom: u64,
    pub p_value: f64,
    /// p below [`SRM_ALPHA`]: the groups' sizes do not fit their shares.
    pub mismatch: bool,
}

/// Everything `GET /v1/admin/experiments/{name}/results` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    pub control: String,
    pub groups: Vec<GroupResult>,
    /// `None` with fewer than two groups holding users.
    pub sample_ratio: Option<SampleRatio>,
}

/// Two-sided p-value of a standard normal statistic.
fn two_sided_p(z: f64) -> f64 {
    statrs::function::erf::erfc(z.abs() / std::f64::consts::SQRT_2)
}

fn compare(group: Option<(f64, f64)>, control: Option<(f64, f64)>) -> Option<Comparison> {
    let ((value, variance), (base, base_variance)) = (group?, control?);
    let difference = value - base;
    let variance = variance + base_variance;
    let p_value = if variance > 0.0 {
        two_sided_p(difference / variance.sqrt())
    } else if difference == 0.0 {
        1.0
    } else {
        0.0
    };
    Some(Comparison {
        difference: Estimate::of(difference, variance),
        p_value,
    })
}

/// The results of `experiment` from its groups' sums (by group name).
pub fn results(experiment: &Experiment, sums: &[(String, GroupSums)]) -> Results {
    let empty = GroupSums::default();
    let sums_of = |name: &str| {
        sums.iter()
            .find(|(group, _)| group == name)
            .map_or(&empty, |(_, sums)| sums)
    };
    let mut names: Vec<(String, f64)> = experiment
        .variants
        .iter()
        .map(|variant| (variant.name.clone(), variant.share))
        .collect();
    if experiment.holdout > 0.0 {
        names.push((HOLDOUT.to_owned(), experiment.holdout));
    }
    let control = sums_of(&experiment.control);
    let metric_parts = |sums: &GroupSums| {
        [
            sums.ratio(sums.clicked, sums.cross[0]),
            sums.ratio(sums.watched, sums.cross[1]),
            sums.ratio(sums.positives, sums.cross[2]),
        ]
    };
    let control_parts = metric_parts(control);
    let groups: Vec<GroupResult> = names
        .iter()
        .map(|(name, share)| {
            let sums = sums_of(name);
            let parts = metric_parts(sums);
            let is_control = *name == experiment.control;
            let metric = |at: usize| Metric {
                estimate: parts[at].map(|(value, variance)| Estimate::of(value, variance)),
                vs_control: if is_control {
                    None
                } else {
                    compare(parts[at], control_parts[at])
                },
            };
            GroupResult {
                name: name.clone(),
                share: *share,
                users: sums.users,
                impressions: sums.impressions.sum as u64,
                clicked: sums.clicked.sum as u64,
                watched: sums.watched.sum as u64,
                positives: sums.positives.sum as u64,
                click_through: metric(0),
                watch_through: metric(1),
                positives_per_impression: metric(2),
                click_positions: if sums.click_positions.is_empty() {
                    vec![0; POSITION_BUCKETS]
                } else {
                    sums.click_positions.clone()
                },
            }
        })
        .collect();
    Results {
        control: experiment.control.clone(),
        sample_ratio: sample_ratio(&groups),
        groups,
    }
}

/// Pearson's chi-square of the users per group against the shares.
pub fn sample_ratio(groups: &[GroupResult]) -> Option<SampleRatio> {
    let total: u64 = groups.iter().map(|group| group.users).sum();
    if groups.len() < 2 || total == 0 {
        return None;
    }
    let chi_square: f64 = groups
        .iter()
        .map(|group| {
            let expected = total as f64 * group.share;
            let gap = group.users as f64 - expected;
            gap * gap / expected
        })
        .sum();
    let degrees_of_freedom = groups.len() as u64 - 1;
    let distribution = ChiSquared::new(degrees_of_freedom as f64).ok()?;
    let p_value = 1.0 - distribution.cdf(chi_square);
    Some(SampleRatio {
        chi_square,
        degrees_of_freedom,
        p_value,
        mismatch: p_value < SRM_ALPHA,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(impressions: u64, clicked: u64) -> UserRecord {
        UserRecord {
            group: String::new(),
            impressions,
            clicked,
            watched: 0,
            positives: clicked,
            click_positions: Vec::new(),
        }
    }

    #[test]
    fn one_list_per_user_gives_the_binomial_interval() {
        let mut sums = GroupSums::default();
        for at in 0..1000 {
            sums.add(&user(1, u64::from(at < 200)));
        }
        let (rate, variance) = sums.ratio(sums.clicked, sums.cross[0]).unwrap();
        assert!((rate - 0.2).abs() < 1e-12);
        // p(1-p)/n with the sample variance's n-1: 0.2 · 0.8 / 999.
        let binomial = 0.2 * 0.8 / 999.0;
        assert!((variance - binomial).abs() / binomial < 1e-9, "{variance}");
    }

    #[test]
    fn p_values_follow_the_normal_tail() {
        assert!((two_sided_p(1.959_963_984_540_054) - 0.05).abs() < 1e-9);
        assert!((two_sided_p(0.0) - 1.0).abs() < 1e-12);
        assert!(two_sided_p(5.0) < 1e-6);
    }

    #[test]
    fn the_sample_ratio_check_flags_a_skewed_split() {
        let group = |name: &str, users: u64| GroupResult {
            name: name.into(),
            share: 0.5,
            users,
            impressions: 0,
            clicked: 0,
            watched: 0,
            positives: 0,
            click_through: Metric {
                estimate: None,
                vs_control: None,
            },
            watch_through: Metric {
                estimate: None,
                vs_control: None,
            },
            positives_per_impression: Metric {
                estimate: None,
                vs_control: None,
            },
            click_positions: Vec::new(),
        };
        let fair = sample_ratio(&[group("a", 5_020), group("b", 4_980)]).unwrap();
        assert!(!fair.mismatch, "{fair:?}");
        assert!((fair.chi_square - 0.16).abs() < 1e-9);
        let skewed = sample_ratio(&[group("a", 5_300), group("b", 4_700)]).unwrap();
        assert!(skewed.mismatch, "{skewed:?}");
    }
}
